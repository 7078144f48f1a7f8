"""Departments over HTTP: create/get/patch/put/delete/children/batch and their rules."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from orgsync.sandbox import SandboxServer

D = "/open-apis/contact/v3/departments"
U = "/open-apis/contact/v3/users"
CUSTOM = {"department_id_type": "department_id", "user_id_type": "user_id"}


def ok(reply: httpx.Response) -> Any:
    body = reply.json()
    assert (reply.status_code, body["code"]) == (200, 0), body
    return body["data"]


def refused(reply: httpx.Response, code: int, status: int = 400) -> str:
    body = reply.json()
    assert (reply.status_code, body["code"]) == (status, code), body
    return str(body["msg"])


def dept(api: httpx.Client, dept_id: str, parent: str = "0", **fields: Any) -> dict[str, Any]:
    body = {"name": fields.pop("name", dept_id.upper()), "parent_department_id": parent,
            "department_id": dept_id, **fields}
    return ok(api.post(D, params=CUSTOM, json=body))["department"]  # type: ignore[no-any-return]


def user(api: httpx.Client, user_id: str, depts: list[str], mobile: str) -> dict[str, Any]:
    body = {"user_id": user_id, "name": user_id, "mobile": mobile, "department_ids": depts,
            "employee_type": 1}
    return ok(api.post(U, params=CUSTOM, json=body))["user"]  # type: ignore[no-any-return]


class TestCreate:
    def test_create_returns_the_full_object_with_generated_open_id(
            self, sandbox_api: httpx.Client) -> None:
        """A created department has an od-+32-hex open id, the custom id and a string order."""
        created = dept(sandbox_api, "eng", name="Engineering")
        assert re.fullmatch(r"od-[0-9a-f]{32}", created["open_department_id"])
        assert created["department_id"] == "eng"
        assert created["parent_department_id"] == "0"
        assert created["order"] == "1"
        assert created["status"] == {"is_deleted": False}
        assert created["member_count"] == 0

    def test_generated_department_id_when_none_given(self, sandbox_api: httpx.Client) -> None:
        """Without department_id the sandbox generates a valid custom id."""
        data = ok(sandbox_api.post(D, json={"name": "X", "parent_department_id": "0"}))
        custom = data["department"]["department_id"]
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_\-@.]{0,63}", custom)
        assert not custom.startswith("od-")

    def test_default_order_goes_after_existing_siblings(self, sandbox_api: httpx.Client) -> None:
        """Default order is one past the largest sibling order."""
        dept(sandbox_api, "a", order="100")
        assert dept(sandbox_api, "b")["order"] == "101"

    def test_ids_are_deterministic_per_seed(self, sandbox: SandboxServer,
                                            sandbox_api: httpx.Client) -> None:
        """Same seed → same generated open ids after a reset."""
        first = dept(sandbox_api, "a")["open_department_id"]
        sandbox.reset()
        assert dept(sandbox_api, "a")["open_department_id"] == first

    @pytest.mark.parametrize(("body", "code", "status"), [
        ({"parent_department_id": "0"}, 40016, 401),
        ({"name": "", "parent_department_id": "0"}, 40016, 401),
        ({"name": "a/b", "parent_department_id": "0"}, 43029, 400),
        ({"name": "X"}, 44101, 400),
        ({"name": "X", "parent_department_id": "nope"}, 40014, 403),
        ({"name": "X", "parent_department_id": "0", "department_id": "od-x"}, 43008, 400),
        ({"name": "X", "parent_department_id": "0", "department_id": "0"}, 43008, 400),
        ({"name": "X", "parent_department_id": "0", "department_id": "1"}, 43008, 400),
        ({"name": "X", "parent_department_id": "0", "department_id": "-bad"}, 43008, 400),
        ({"name": "X", "parent_department_id": "0", "department_id": "a" * 65}, 43008, 400),
        ({"name": "X", "parent_department_id": "0", "order": "-1"}, 40001, 400),
        ({"name": "X", "parent_department_id": "0", "order": "abc"}, 40001, 400),
        ({"name": "X", "parent_department_id": "0", "leader_user_id": "ghost"}, 41012, 400),
        ({"name": "X", "parent_department_id": "0", "group_chat_employee_types": [9]}, 43026,
         400),
    ])
    def test_create_validation(self, sandbox_api: httpx.Client, body: dict[str, Any],
                               code: int, status: int) -> None:
        """Each documented create rule answers its code and HTTP status."""
        refused(sandbox_api.post(D, params=CUSTOM, json=body), code, status)

    def test_duplicate_custom_id_among_live(self, sandbox_api: httpx.Client) -> None:
        """A live department's custom id cannot be reused (43007)."""
        dept(sandbox_api, "eng")
        body = {"name": "Other", "parent_department_id": "0", "department_id": "eng"}
        refused(sandbox_api.post(D, params=CUSTOM, json=body), 43007)

    def test_name_unique_among_siblings_only(self, sandbox_api: httpx.Client) -> None:
        """Same name under the same parent → 43022; under another parent it is fine."""
        dept(sandbox_api, "a", name="Team")
        dept(sandbox_api, "b", name="Other")
        body = {"name": "Team", "parent_department_id": "0", "department_id": "c"}
        refused(sandbox_api.post(D, params=CUSTOM, json=body), 43022)
        assert dept(sandbox_api, "c", parent="b", name="Team")["name"] == "Team"

    def test_order_unique_among_siblings(self, sandbox_api: httpx.Client) -> None:
        """An explicit order already used by a sibling → 43005."""
        dept(sandbox_api, "a", order="5")
        body = {"name": "B", "parent_department_id": "0", "department_id": "b", "order": "5"}
        refused(sandbox_api.post(D, params=CUSTOM, json=body), 43005)

    def test_depth_limit_is_25_levels(self, sandbox_api: httpx.Client) -> None:
        """The 25th level is allowed, the 26th answers 43019."""
        parent = "0"
        for level in range(1, 26):
            parent = dept(sandbox_api, f"l{level}", parent=parent)["department_id"]
        body = {"name": "deep", "parent_department_id": parent, "department_id": "l26"}
        refused(sandbox_api.post(D, params=CUSTOM, json=body), 43019)

    def test_leaders_accept_both_casings_and_render_camel_case(
            self, sandbox_api: httpx.Client) -> None:
        """snake_case (SDK) and camelCase leaders are accepted; camelCase comes back."""
        dept(sandbox_api, "home")
        boss = user(sandbox_api, "boss", ["home"], "13000000001")
        deputy = user(sandbox_api, "dep", ["home"], "13000000002")
        created = dept(sandbox_api, "x", leaders=[
            {"leader_type": 1, "leader_id": boss["user_id"]},
            {"leaderType": 2, "leaderID": deputy["user_id"]}])
        assert created["leaders"] == [{"leaderType": 1, "leaderID": "boss"},
                                      {"leaderType": 2, "leaderID": "dep"}]
        assert created["leader_user_id"] == "boss"

    def test_leader_user_id_and_leaders_must_agree(self, sandbox_api: httpx.Client) -> None:
        """leader_user_id different from the main leader in leaders → 40001."""
        dept(sandbox_api, "home")
        user(sandbox_api, "boss", ["home"], "13000000001")
        user(sandbox_api, "other", ["home"], "13000000002")
        body = {"name": "X", "parent_department_id": "0", "leader_user_id": "other",
                "leaders": [{"leaderType": 1, "leaderID": "boss"}]}
        refused(sandbox_api.post(D, params=CUSTOM, json=body), 40001)

    def test_resigned_leader_is_refused(self, sandbox_api: httpx.Client) -> None:
        """A resigned user cannot lead a department (42006)."""
        dept(sandbox_api, "home")
        user(sandbox_api, "gone", ["home"], "13000000001")
        ok(sandbox_api.delete(f"{U}/gone", params=CUSTOM))
        body = {"name": "X", "parent_department_id": "0", "leader_user_id": "gone"}
        refused(sandbox_api.post(D, params=CUSTOM, json=body), 42006)

    def test_create_group_chat_gives_a_chat_id(self, sandbox_api: httpx.Client) -> None:
        """create_group_chat=true returns an oc_ chat id."""
        created = dept(sandbox_api, "x", create_group_chat=True)
        assert created["chat_id"].startswith("oc_")


class TestClientToken:
    def test_same_token_same_body_replays(self, sandbox: SandboxServer,
                                          sandbox_api: httpx.Client) -> None:
        """A repeated client_token with the same body returns the first answer, no new entity."""
        body = {"name": "A", "parent_department_id": "0"}
        params = {"client_token": "tok-1"}
        first = ok(sandbox_api.post(D, params=params, json=body))
        second = ok(sandbox_api.post(D, params=params, json=body))
        assert first == second
        assert len(sandbox.tenant.departments) == 2  # root + one

    def test_same_token_other_body_is_40021(self, sandbox_api: httpx.Client) -> None:
        """A repeated client_token with a different body → 40021."""
        params = {"client_token": "tok-2"}
        ok(sandbox_api.post(D, params=params, json={"name": "A", "parent_department_id": "0"}))
        refused(sandbox_api.post(D, params=params,
                                 json={"name": "B", "parent_department_id": "0"}), 40021)


class TestReadAndIdTypes:
    def test_get_by_either_id_type(self, sandbox_api: httpx.Client) -> None:
        """GET honours department_id_type for the path and the rendered parent."""
        eng = dept(sandbox_api, "eng")
        dept(sandbox_api, "be", parent="eng")
        by_open = ok(sandbox_api.get(f"{D}/{eng['open_department_id']}"))["department"]
        assert by_open["department_id"] == "eng"
        child = ok(sandbox_api.get(f"{D}/be", params=CUSTOM))["department"]
        assert child["parent_department_id"] == "eng"
        child_open = ok(sandbox_api.get(f"{D}/{child['open_department_id']}"))["department"]
        assert child_open["parent_department_id"] == eng["open_department_id"]

    def test_get_unknown_is_40015(self, sandbox_api: httpx.Client) -> None:
        """GET of an unknown department → 40015."""
        refused(sandbox_api.get(f"{D}/nope", params=CUSTOM), 40015)

    def test_unknown_id_on_write_is_a_gateway_error(self, sandbox_api: httpx.Client) -> None:
        """Write APIs answer 99992380 for a custom id, 99992357 for an open id."""
        refused(sandbox_api.patch(f"{D}/nope", params=CUSTOM, json={"name": "x"}), 99992380)
        refused(sandbox_api.delete(f"{D}/od-{'0' * 32}"), 99992357)

    def test_bad_id_type_value(self, sandbox_api: httpx.Client) -> None:
        """An unknown department_id_type is a parameter error (99992402)."""
        refused(sandbox_api.get(f"{D}/0", params={"department_id_type": "x"}), 99992402)

    def test_batch_with_repeated_keys(self, sandbox_api: httpx.Client) -> None:
        """departments/batch takes repeated department_ids and keeps their order."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "b")
        data = ok(sandbox_api.get(f"{D}/batch", params=[
            ("department_ids", "b"), ("department_ids", "a"),
            ("department_id_type", "department_id")]))
        assert [d["department_id"] for d in data["items"]] == ["b", "a"]

    def test_parent_chain_excludes_root(self, sandbox_api: httpx.Client) -> None:
        """departments/parent lists ancestors nearest first, without the root."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "b", parent="a")
        dept(sandbox_api, "c", parent="b")
        data = ok(sandbox_api.get(f"{D}/parent", params={**CUSTOM, "department_id": "c"}))
        assert [d["department_id"] for d in data["items"]] == ["b", "a"]

    def test_member_counts_follow_memberships(self, sandbox_api: httpx.Client) -> None:
        """member_count includes sub-departments; primary_member_count counts primaries."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "b", parent="a")
        user(sandbox_api, "u1", ["b"], "13000000001")
        user(sandbox_api, "u2", ["a", "b"], "13000000002")
        a = ok(sandbox_api.get(f"{D}/a", params=CUSTOM))["department"]
        b = ok(sandbox_api.get(f"{D}/b", params=CUSTOM))["department"]
        assert (a["member_count"], a["primary_member_count"]) == (2, 2)
        assert (b["member_count"], b["primary_member_count"]) == (2, 1)


class TestChildren:
    def test_direct_children_sorted_by_order(self, sandbox_api: httpx.Client) -> None:
        """children lists direct children only, by order."""
        dept(sandbox_api, "a", order="20")
        dept(sandbox_api, "b", order="10")
        dept(sandbox_api, "a1", parent="a")
        data = ok(sandbox_api.get(f"{D}/0/children", params=CUSTOM))
        assert [d["department_id"] for d in data["items"]] == ["b", "a"]
        assert data["has_more"] is False
        assert "page_token" not in data

    def test_fetch_child_recurses_with_sdk_boolean(self, sandbox_api: httpx.Client) -> None:
        """fetch_child=True (capitalized, as the SDK sends) returns every level."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "a1", parent="a")
        dept(sandbox_api, "a11", parent="a1")
        data = ok(sandbox_api.get(f"{D}/0/children", params={**CUSTOM, "fetch_child": "True"}))
        assert [d["department_id"] for d in data["items"]] == ["a", "a1", "a11"]

    def test_a_walk_after_each_change_sees_the_tree_as_it_is(self,
                                                             sandbox_api: httpx.Client) -> None:
        """The subtree a fetch_child walk pages through is remembered between pages, and
        every create, reorder, move and delete is seen by the next walk."""
        def walk() -> list[str]:
            data = ok(sandbox_api.get(f"{D}/0/children", params={**CUSTOM, "fetch_child": "true"}))
            return [d["department_id"] for d in data["items"]]

        dept(sandbox_api, "a", order="10")
        dept(sandbox_api, "b", order="20")
        assert walk() == ["a", "b"]
        dept(sandbox_api, "a1", parent="a")
        assert walk() == ["a", "a1", "b"]
        ok(sandbox_api.patch(f"{D}/b", params=CUSTOM, json={"order": "5"}))
        assert walk() == ["b", "a", "a1"]
        ok(sandbox_api.patch(f"{D}/a1", params=CUSTOM, json={"parent_department_id": "b"}))
        assert walk() == ["b", "a1", "a"]
        ok(sandbox_api.delete(f"{D}/a1", params=CUSTOM))
        assert walk() == ["b", "a"]

    def test_paging_visits_each_item_once(self, sandbox_api: httpx.Client) -> None:
        """Walking page tokens yields every child exactly once; token only while has_more."""
        for i in range(23):
            dept(sandbox_api, f"d{i:02d}")
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {**CUSTOM, "page_size": 10}
            if token:
                params["page_token"] = token
            data = ok(sandbox_api.get(f"{D}/0/children", params=params))
            seen += [d["department_id"] for d in data["items"]]
            pages += 1
            if not data["has_more"]:
                assert "page_token" not in data
                break
            token = data["page_token"]
        assert pages == 3
        assert sorted(seen) == [f"d{i:02d}" for i in range(23)]
        assert len(set(seen)) == 23

    def test_default_page_size_is_10(self, sandbox_api: httpx.Client) -> None:
        """Without page_size a page holds 10 items."""
        for i in range(12):
            dept(sandbox_api, f"d{i}")
        data = ok(sandbox_api.get(f"{D}/0/children"))
        assert len(data["items"]) == 10
        assert data["has_more"] is True

    @pytest.mark.parametrize("size", ["0", "51", "-1", "ten"])
    def test_bad_page_size_is_40011(self, sandbox_api: httpx.Client, size: str) -> None:
        """page_size outside 1..50 → 40011."""
        refused(sandbox_api.get(f"{D}/0/children", params={"page_size": size}), 40011)

    def test_page_size_50_is_allowed(self, sandbox_api: httpx.Client) -> None:
        """page_size=50 is the documented maximum."""
        ok(sandbox_api.get(f"{D}/0/children", params={"page_size": "50"}))

    @pytest.mark.parametrize("token", ["garbage", "eyJzIjoiMTIzIiwibyI6MTB9"])
    def test_bad_page_token_is_40012(self, sandbox_api: httpx.Client, token: str) -> None:
        """An undecodable token, or one from another listing → 40012."""
        refused(sandbox_api.get(f"{D}/0/children", params={"page_token": token}), 40012)


class TestPatchAndMove:
    def test_patch_is_partial(self, sandbox_api: httpx.Client) -> None:
        """PATCH changes only the fields sent."""
        dept(sandbox_api, "a", order="7")
        data = ok(sandbox_api.patch(f"{D}/a", params=CUSTOM, json={"name": "Renamed"}))
        assert (data["department"]["name"], data["department"]["order"]) == ("Renamed", "7")

    @pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
    def test_root_cannot_be_changed(self, sandbox_api: httpx.Client, method: str) -> None:
        """PATCH/PUT/DELETE on the root → 40002."""
        body = {"name": "x", "parent_department_id": "0"} if method != "DELETE" else None
        refused(sandbox_api.request(method, f"{D}/0", json=body), 40002)

    def test_move_under_another_parent(self, sandbox_api: httpx.Client) -> None:
        """PATCH parent_department_id moves the department with its subtree."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "b")
        dept(sandbox_api, "b1", parent="b")
        moved = ok(sandbox_api.patch(f"{D}/b", params=CUSTOM,
                                     json={"parent_department_id": "a"}))["department"]
        assert moved["parent_department_id"] == "a"
        data = ok(sandbox_api.get(f"{D}/a/children", params={**CUSTOM, "fetch_child": "true"}))
        assert [d["department_id"] for d in data["items"]] == ["b", "b1"]

    @pytest.mark.parametrize("target", ["a", "a2"])
    def test_move_into_itself_or_descendant_is_40001(self, sandbox_api: httpx.Client,
                                                     target: str) -> None:
        """Moving a department under itself or a descendant → 40001 with a clear msg."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "a1", parent="a")
        dept(sandbox_api, "a2", parent="a1")
        msg = refused(sandbox_api.patch(f"{D}/a", params=CUSTOM,
                                        json={"parent_department_id": target}), 40001)
        assert "descendant" in msg

    def test_move_checks_name_clash_at_new_parent(self, sandbox_api: httpx.Client) -> None:
        """A move onto a sibling with the same name → 43022."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "team1", parent="a", name="Team")
        dept(sandbox_api, "team2", name="Team")
        refused(sandbox_api.patch(f"{D}/team2", params=CUSTOM,
                                  json={"parent_department_id": "a"}), 43022)

    def test_move_respects_depth(self, sandbox_api: httpx.Client) -> None:
        """Moving a 2-level subtree under level 24 would reach 26 levels → 43019."""
        parent = "0"
        for level in range(1, 25):
            parent = dept(sandbox_api, f"l{level}", parent=parent)["department_id"]
        dept(sandbox_api, "x")
        dept(sandbox_api, "x1", parent="x")
        refused(sandbox_api.patch(f"{D}/x", params=CUSTOM,
                                  json={"parent_department_id": parent}), 43019)

    def test_patch_leader_keeps_deputies(self, sandbox_api: httpx.Client) -> None:
        """leader_user_id alone replaces the main leader and keeps deputies."""
        dept(sandbox_api, "home")
        user(sandbox_api, "boss", ["home"], "13000000001")
        user(sandbox_api, "dep", ["home"], "13000000002")
        user(sandbox_api, "new", ["home"], "13000000003")
        dept(sandbox_api, "x", leaders=[{"leaderType": 1, "leaderID": "boss"},
                                        {"leaderType": 2, "leaderID": "dep"}])
        data = ok(sandbox_api.patch(f"{D}/x", params=CUSTOM, json={"leader_user_id": "new"}))
        assert data["department"]["leaders"] == [{"leaderType": 1, "leaderID": "new"},
                                                 {"leaderType": 2, "leaderID": "dep"}]
        cleared = ok(sandbox_api.patch(f"{D}/x", params=CUSTOM, json={"leaders": []}))
        assert (cleared["department"]["leaders"], cleared["department"]["leader_user_id"]) == \
            ([], "")

    def test_put_replaces_but_keeps_order(self, sandbox_api: httpx.Client) -> None:
        """PUT clears omitted fields except order; name and parent are required."""
        dept(sandbox_api, "x", order="9", group_chat_employee_types=[1])
        data = ok(sandbox_api.put(f"{D}/x", params=CUSTOM,
                                  json={"name": "New", "parent_department_id": "0"}))
        assert (data["department"]["order"], data["department"]["group_chat_employee_types"]) \
            == ("9", [])
        refused(sandbox_api.put(f"{D}/x", params=CUSTOM, json={"name": "New"}), 40017)
        refused(sandbox_api.put(f"{D}/x", params=CUSTOM, json={"parent_department_id": "0"}),
                40016)


class TestDelete:
    def test_delete_rules(self, sandbox_api: httpx.Client) -> None:
        """Members → 43011, children → 43012; an empty leaf is deleted and its id freed."""
        dept(sandbox_api, "a")
        dept(sandbox_api, "a1", parent="a")
        user(sandbox_api, "u", ["a1"], "13000000001")
        refused(sandbox_api.delete(f"{D}/a1", params=CUSTOM), 43011)
        refused(sandbox_api.delete(f"{D}/a", params=CUSTOM), 43012)
        ok(sandbox_api.patch(f"{U}/u", params=CUSTOM, json={"department_ids": ["a"]}))
        a1 = ok(sandbox_api.get(f"{D}/a1", params=CUSTOM))["department"]
        assert ok(sandbox_api.delete(f"{D}/a1", params=CUSTOM)) == {}
        gone = ok(sandbox_api.get(f"{D}/{a1['open_department_id']}"))["department"]
        assert gone["status"] == {"is_deleted": True}
        refused(sandbox_api.get(f"{D}/a1", params=CUSTOM), 40015)
        again = dept(sandbox_api, "a1", parent="a")
        assert again["open_department_id"] != a1["open_department_id"]

    def test_deleted_department_leaves_listings(self, sandbox_api: httpx.Client) -> None:
        """A deleted department no longer appears in children."""
        dept(sandbox_api, "a")
        ok(sandbox_api.delete(f"{D}/a", params=CUSTOM))
        assert ok(sandbox_api.get(f"{D}/0/children"))["items"] == []


def test_update_department_id(sandbox_api: httpx.Client) -> None:
    """PATCH departments/:id/update_department_id (feishu-api-more.md §3): the same department
    (open id, members, children) under a new id; the old id is gone; a taken, invalid or
    missing new id is refused, and the root cannot be renamed."""
    api = sandbox_api
    eng = dept(api, "eng")
    dept(api, "ops")
    dept(api, "web", parent="eng")
    user(api, "u1", ["eng"], "+8613800000001")
    assert ok(api.patch(f"{D}/eng/update_department_id", params=CUSTOM,
                        json={"new_department_id": "D100"})) == {}
    moved = ok(api.get(f"{D}/D100", params=CUSTOM))["department"]
    assert moved["open_department_id"] == eng["open_department_id"]
    assert moved["member_count"] == 1
    assert ok(api.get(f"{D}/web", params=CUSTOM))["department"]["parent_department_id"] == "D100"
    refused(api.get(f"{D}/eng", params=CUSTOM), 40015)
    path = f"{D}/D100/update_department_id"
    refused(api.patch(path, params=CUSTOM, json={"new_department_id": "ops"}), 43007)
    for bad in ("od-1", "0", "x" * 65, "-x"):
        refused(api.patch(path, params=CUSTOM, json={"new_department_id": bad}), 43008)
    refused(api.patch(path, params=CUSTOM, json={}), 40001)
    refused(api.patch(f"{D}/0/update_department_id", params=CUSTOM,
                      json={"new_department_id": "top"}), 40002)
    refused(api.patch(f"{D}/nope/update_department_id", params=CUSTOM,
                      json={"new_department_id": "n"}), 99992380)
