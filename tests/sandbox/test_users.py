"""Users over HTTP: create/get/patch/delete/resurrect/find_by_department/batch/batch_get_id."""

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


def renew_token(api: httpx.Client) -> None:
    """Fetch a token valid at the (advanced) sandbox clock and use it from now on."""
    reply = api.post("/open-apis/auth/v3/tenant_access_token/internal",
                     json={"app_id": "cli_sandbox", "app_secret": "sandbox-secret"})
    api.headers["Authorization"] = f"Bearer {reply.json()['tenant_access_token']}"


def dept(api: httpx.Client, dept_id: str, parent: str = "0") -> None:
    ok(api.post(D, params=CUSTOM, json={"name": dept_id, "parent_department_id": parent,
                                        "department_id": dept_id}))


def body_for(user_id: str, n: int, depts: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "name": f"User {user_id}", "mobile": f"130{n:08d}",
            "email": f"{user_id}@example.com", "department_ids": depts or ["d1"],
            "employee_type": 1, **extra}


def create(api: httpx.Client, user_id: str, n: int, depts: list[str] | None = None,
           **extra: Any) -> dict[str, Any]:
    return ok(api.post(U, params=CUSTOM, json=body_for(user_id, n, depts, **extra)))["user"]  # type: ignore[no-any-return]


@pytest.fixture
def api(sandbox_api: httpx.Client) -> httpx.Client:
    """The sandbox with departments d1 and d2 under the root."""
    dept(sandbox_api, "d1")
    dept(sandbox_api, "d2")
    return sandbox_api


class TestCreate:
    def test_create_renders_all_id_kinds(self, api: httpx.Client) -> None:
        """open_id ou_+32 hex, union_id on_+32 hex, the custom user_id and normalized mobile."""
        user = create(api, "alice", 1)
        assert re.fullmatch(r"ou_[0-9a-f]{32}", user["open_id"])
        assert re.fullmatch(r"on_[0-9a-f]{32}", user["union_id"])
        assert user["user_id"] == "alice"
        assert user["mobile"] == "+8613000000001"
        assert user["department_ids"] == ["d1"]
        assert user["status"]["is_resigned"] is False
        assert user["orders"] == [{"department_id": "d1", "user_order": 0,
                                   "department_order": 0, "is_primary_dept": True}]

    def test_generated_user_id(self, api: httpx.Client) -> None:
        """Without user_id the sandbox generates one."""
        body = body_for("gen", 1)
        del body["user_id"]
        assert ok(api.post(U, params=CUSTOM, json=body))["user"]["user_id"]

    def test_default_id_types_render_open_ids(self, api: httpx.Client) -> None:
        """Without id-type params, departments and leaders render as open ids."""
        boss = create(api, "boss", 1)
        d1 = ok(api.get(f"{D}/d1", params=CUSTOM))["department"]["open_department_id"]
        body = {"name": "Bob", "mobile": "13000000002", "department_ids": [d1],
                "employee_type": 2, "leader_user_id": boss["open_id"]}
        user = ok(api.post(U, json=body))["user"]
        assert (user["department_ids"], user["leader_user_id"]) == ([d1], boss["open_id"])

    @pytest.mark.parametrize(("change", "code"), [
        ({"name": ""}, 41040),
        ({"name": "x" * 256}, 41070),
        ({"mobile": ""}, 41010),
        ({"mobile": "12345"}, 41004),
        ({"mobile": "+86123"}, 41004),
        ({"mobile": "+41446681800", "email": None}, 44020),
        ({"email": "not-an-email"}, 41005),
        ({"user_id": "x" * 65}, 41043),
        ({"user_id": "has space"}, 41012),
        ({"department_ids": []}, 41041),
        ({"department_ids": [f"x{i}" for i in range(51)]}, 41033),
        ({"department_ids": ["nope"]}, 99992380),
        ({"employee_type": 6}, 41059),
        ({"employee_type": None}, 41059),
        ({"leader_user_id": "ghost"}, 44022),
        ({"leader_user_id": "me"}, 41030),
        ({"orders": [{"department_id": "d2", "user_order": 1}]}, 41025),
        ({"enterprise_email": "me@corp.feishu.cn"}, 44001),
    ])
    def test_create_validation(self, api: httpx.Client, change: dict[str, Any],
                               code: int) -> None:
        """Each documented create rule answers its code."""
        body = {**body_for("me", 1), **change}
        body = {k: v for k, v in body.items() if v is not None}
        refused(api.post(U, params=CUSTOM, json=body), code)

    def test_international_mobile_with_email(self, api: httpx.Client) -> None:
        """A +41 mobile is accepted when an email is given."""
        assert create(api, "ch", 0, mobile="+41446681800")["mobile"] == "+41446681800"

    @pytest.mark.parametrize(("field", "value", "code"), [
        ("mobile", "+8613000000001", 41001),
        ("email", "ALICE@example.com", 41002),
        ("user_id", "alice", 41011),
        ("employee_no", "E1", 44051),
    ])
    def test_uniqueness_among_live_users(self, api: httpx.Client, field: str, value: str,
                                         code: int) -> None:
        """mobile/email/user_id/employee_no are unique among non-resigned users."""
        create(api, "alice", 1, employee_no="E1")
        refused(api.post(U, params=CUSTOM, json={**body_for("bob", 2), field: value}), code)

    def test_resigned_users_free_their_unique_values(self, api: httpx.Client) -> None:
        """After a delete, the same mobile, email and user_id can be used again."""
        first = create(api, "alice", 1)
        ok(api.delete(f"{U}/alice", params=CUSTOM))
        again = create(api, "alice", 1)
        assert again["open_id"] != first["open_id"]

    def test_resigned_leader_is_44021(self, api: httpx.Client) -> None:
        """A resigned leader → 44021."""
        create(api, "boss", 1)
        ok(api.delete(f"{U}/boss", params=CUSTOM))
        refused(api.post(U, params=CUSTOM, json=body_for("me", 2, leader_user_id="boss")),
                44021)

    def test_orders_primary_needs_largest_department_order(self, api: httpx.Client) -> None:
        """The primary department must have the largest department_order (41410)."""
        orders = [{"department_id": "d1", "department_order": 1, "is_primary_dept": True},
                  {"department_id": "d2", "department_order": 5}]
        refused(api.post(U, params=CUSTOM,
                         json=body_for("me", 1, ["d1", "d2"], orders=orders)), 41410)
        orders[0]["department_order"] = 9
        user = create(api, "me", 1, ["d1", "d2"], orders=orders)
        assert [o["is_primary_dept"] for o in user["orders"]] == [True, False]

    def test_client_token_replay_and_conflict(self, sandbox: SandboxServer,
                                              api: httpx.Client) -> None:
        """Same client_token: same body replays the user, another body → 40021."""
        params = {**CUSTOM, "client_token": "c-1"}
        first = ok(api.post(U, params=params, json=body_for("alice", 1)))
        assert ok(api.post(U, params=params, json=body_for("alice", 1))) == first
        assert len(sandbox.tenant.users) == 1
        refused(api.post(U, params=params, json=body_for("bob", 2)), 40021)

    def test_users_unjoined_knob(self, sandbox: SandboxServer, api: httpx.Client) -> None:
        """With users_unjoined, new users are unjoined and PATCH answers 44010."""
        sandbox.configure(users_unjoined=True)
        user = create(api, "alice", 1)
        assert user["status"]["is_unjoin"] is True
        refused(api.patch(f"{U}/alice", params=CUSTOM, json={"name": "A"}), 44010)


class TestReadAndIdTypes:
    def test_get_by_each_id_type(self, api: httpx.Client) -> None:
        """GET resolves the path id by user_id_type and renders ids in that type."""
        user = create(api, "alice", 1)
        for kind in ("open_id", "union_id", "user_id"):
            got = ok(api.get(f"{U}/{user[kind]}", params={"user_id_type": kind}))["user"]
            assert got["open_id"] == user["open_id"]

    def test_unknown_user(self, api: httpx.Client) -> None:
        """Unknown ids answer the gateway's "not existed" codes."""
        refused(api.get(f"{U}/ghost", params=CUSTOM), 99992360)
        refused(api.get(f"{U}/ou_{'0' * 32}"), 99992351)

    def test_batch_with_repeated_keys(self, api: httpx.Client) -> None:
        """users/batch takes repeated user_ids."""
        create(api, "a", 1)
        create(api, "b", 2)
        data = ok(api.get(f"{U}/batch", params=[("user_ids", "b"), ("user_ids", "a"),
                                                 ("user_id_type", "user_id")]))
        assert [u["user_id"] for u in data["items"]] == ["b", "a"]

    def test_find_by_department_pages_direct_members(self, api: httpx.Client) -> None:
        """find_by_department lists direct members only, page by page, no one twice."""
        dept(api, "sub", parent="d1")
        for i in range(12):
            create(api, f"u{i:02d}", i)
        create(api, "deep", 99, ["sub"])
        params = {**CUSTOM, "department_id": "d1", "page_size": "5"}
        seen: list[str] = []
        while True:
            data = ok(api.get(f"{U}/find_by_department", params=params))
            seen += [u["user_id"] for u in data["items"]]
            if not data["has_more"]:
                break
            params["page_token"] = data["page_token"]
        assert seen == [f"u{i:02d}" for i in range(12)]

    def test_find_by_department_errors(self, api: httpx.Client) -> None:
        """Bad page size → 40011, bad token → 40012, unknown department → 40015."""
        url = f"{U}/find_by_department"
        refused(api.get(url, params={**CUSTOM, "department_id": "d1", "page_size": 51}), 40011)
        refused(api.get(url, params={**CUSTOM, "department_id": "d1", "page_token": "x"}),
                40012)
        refused(api.get(url, params={**CUSTOM, "department_id": "nope"}), 40015)

    def test_batch_get_id(self, api: httpx.Client) -> None:
        """One entry per input; unknown and (by default) resigned ones carry no user_id."""
        create(api, "alice", 1)
        create(api, "gone", 2)
        ok(api.delete(f"{U}/gone", params=CUSTOM))
        body: dict[str, Any] = {
            "emails": ["alice@example.com", "nobody@example.com", "gone@example.com"],
            "mobiles": ["13000000001", "+8613000000002"]}
        data = ok(api.post(f"{U}/batch_get_id", params={"user_id_type": "user_id"}, json=body))
        entries = data["user_list"]
        assert [e.get("user_id") for e in entries] == ["alice", None, None, "alice", None]
        assert entries[1] == {"email": "nobody@example.com"}
        body["include_resigned"] = True
        data = ok(api.post(f"{U}/batch_get_id", params={"user_id_type": "user_id"}, json=body))
        assert [e.get("user_id") for e in data["user_list"]] == \
            ["alice", None, "gone", "alice", "gone"]
        refused(api.post(f"{U}/batch_get_id", json={"emails": ["a@b.c"] * 51}), 40001)


class TestPatch:
    def test_patch_is_partial(self, api: httpx.Client) -> None:
        """Fields not sent are unchanged."""
        create(api, "alice", 1, job_title="Dev")
        user = ok(api.patch(f"{U}/alice", params=CUSTOM, json={"name": "Alice B"}))["user"]
        assert (user["name"], user["job_title"], user["mobile"]) == \
            ("Alice B", "Dev", "+8613000000001")

    def test_move_between_departments_updates_members(self, api: httpx.Client) -> None:
        """PATCH department_ids moves the user; find_by_department follows."""
        create(api, "alice", 1)
        ok(api.patch(f"{U}/alice", params=CUSTOM, json={"department_ids": ["d2"]}))
        url = f"{U}/find_by_department"
        assert ok(api.get(url, params={**CUSTOM, "department_id": "d1"}))["items"] == []
        moved = ok(api.get(url, params={**CUSTOM, "department_id": "d2"}))["items"]
        assert [u["user_id"] for u in moved] == ["alice"]

    def test_orders_without_department_ids_is_44002(self, api: httpx.Client) -> None:
        """orders may only change together with department_ids."""
        create(api, "alice", 1)
        refused(api.patch(f"{U}/alice", params=CUSTOM,
                          json={"orders": [{"department_id": "d1", "user_order": 3}]}), 44002)

    def test_freeze_and_unfreeze(self, sandbox: SandboxServer, api: httpx.Client) -> None:
        """is_frozen freezes and unfreezes."""
        sandbox.configure(rate_limits=False)  # two freezes within a second exceed 1 QPS
        create(api, "alice", 1)
        user = ok(api.patch(f"{U}/alice", params=CUSTOM, json={"is_frozen": True}))["user"]
        assert user["status"]["is_frozen"] is True
        user = ok(api.patch(f"{U}/alice", params=CUSTOM, json={"is_frozen": False}))["user"]
        assert user["status"]["is_frozen"] is False

    def test_resigned_user_cannot_be_patched(self, api: httpx.Client) -> None:
        """PATCH on a resigned user → 42006."""
        create(api, "alice", 1)
        ok(api.delete(f"{U}/alice", params=CUSTOM))
        refused(api.patch(f"{U}/alice", params=CUSTOM, json={"name": "x"}), 42006)

    def test_management_cycle_is_40001(self, api: httpx.Client) -> None:
        """a → b → c, then c's leader = a would close a cycle: 40001."""
        create(api, "a", 1)
        create(api, "b", 2, leader_user_id="a")
        create(api, "c", 3, leader_user_id="b")
        refused(api.patch(f"{U}/a", params=CUSTOM, json={"leader_user_id": "c"}), 40001)
        refused(api.patch(f"{U}/a", params=CUSTOM, json={"leader_user_id": "a"}), 41030)

    def test_patch_mobile_uniqueness_and_region(self, api: httpx.Client) -> None:
        """A taken mobile → 41001; a non-+86 mobile for a user without email → 44020."""
        create(api, "a", 1)
        create(api, "b", 2, email=None)
        refused(api.patch(f"{U}/b", params=CUSTOM, json={"mobile": "13000000001"}), 41001)
        refused(api.patch(f"{U}/b", params=CUSTOM, json={"mobile": "+41446681800"}), 44020)
        refused(api.patch(f"{U}/b", params=CUSTOM, json={"name": "x" * 256}), 44006)


class TestDeleteAndResurrect:
    def test_delete_marks_resigned_and_records_handover(self, sandbox: SandboxServer,
                                                        api: httpx.Client) -> None:
        """Delete: resigned, no departments, resign time and acceptors recorded."""
        boss = create(api, "boss", 1)
        create(api, "alice", 2, leader_user_id="boss")
        assert ok(api.request("DELETE", f"{U}/alice", params=CUSTOM,
                              json={"docs_acceptor_user_id": "boss"})) == {}
        user = ok(api.get(f"{U}/alice", params=CUSTOM))["user"]
        assert (user["status"]["is_resigned"], user["department_ids"]) == (True, [])
        record = sandbox.tenant.find_user("alice", "user_id")
        assert record is not None
        assert record.resign_time is not None
        assert record.handover == {"docs_acceptor_user_id": boss["open_id"]}

    def test_delete_with_bad_acceptor_is_41052(self, api: httpx.Client) -> None:
        """An unknown or self acceptor → 41052, and the user stays."""
        create(api, "alice", 1)
        refused(api.request("DELETE", f"{U}/alice", params=CUSTOM,
                            json={"docs_acceptor_user_id": "ghost"}), 41052)
        refused(api.request("DELETE", f"{U}/alice", params=CUSTOM,
                            json={"calendar_acceptor_user_id": "alice"}), 41052)
        assert ok(api.get(f"{U}/alice", params=CUSTOM))["user"]["status"]["is_resigned"] is False

    def test_tenant_manager_cannot_be_deleted(self, sandbox: SandboxServer,
                                              api: httpx.Client) -> None:
        """Deleting a tenant manager → 44037."""
        create(api, "admin", 1)
        record = sandbox.tenant.find_user("admin", "user_id")
        assert record is not None
        record.is_tenant_manager = True
        refused(api.delete(f"{U}/admin", params=CUSTOM), 44037)

    def test_resurrect_restores_membership(self, api: httpx.Client) -> None:
        """Resurrect with departments brings the user back there."""
        create(api, "alice", 1)
        ok(api.delete(f"{U}/alice", params=CUSTOM))
        body = {"departments": [{"department_id": "d2", "user_order": 1}]}
        assert ok(api.post(f"{U}/alice/resurrect", params=CUSTOM, json=body)) == {}
        user = ok(api.get(f"{U}/alice", params=CUSTOM))["user"]
        assert (user["status"]["is_resigned"], user["department_ids"]) == (False, ["d2"])

    def test_resurrect_requires_resigned(self, api: httpx.Client) -> None:
        """Resurrecting an active user → 44033."""
        create(api, "alice", 1)
        refused(api.post(f"{U}/alice/resurrect", params=CUSTOM, json={}), 44033)

    def test_resurrect_window_is_30_days(self, sandbox: SandboxServer,
                                         api: httpx.Client) -> None:
        """29 days after resigning is fine, 31 days → 44028."""
        create(api, "a", 1)
        create(api, "b", 2)
        ok(api.delete(f"{U}/a", params=CUSTOM))
        ok(api.delete(f"{U}/b", params=CUSTOM))
        sandbox.advance_clock(29 * 86400)
        renew_token(api)  # the old token expired on the sandbox clock
        ok(api.post(f"{U}/a/resurrect", params=CUSTOM))
        sandbox.advance_clock(2 * 86400)
        renew_token(api)
        refused(api.post(f"{U}/b/resurrect", params=CUSTOM), 44028)

    @pytest.mark.parametrize(("field", "code"), [("mobile", 44030), ("email", 44031),
                                                 ("user_id", 44032)])
    def test_resurrect_conflicts(self, api: httpx.Client, field: str, code: int) -> None:
        """A live user holding the mobile/email/user_id blocks the resurrect."""
        old = create(api, "alice", 1)
        ok(api.delete(f"{U}/alice", params=CUSTOM))
        taken = {"mobile": "13000000001", "email": "alice@example.com", "user_id": "alice"}
        ok(api.post(U, params=CUSTOM, json={**body_for("bob", 2), field: taken[field]}))
        refused(api.post(f"{U}/{old['open_id']}/resurrect", json={}), code)


def test_update_user_id(api: httpx.Client) -> None:
    """PATCH users/:id/update_user_id (feishu-api-more.md §3): the same person under a new
    id; the old id is gone; a taken, over-long or missing new id is refused."""
    u1 = create(api, "u1", 1)
    create(api, "u2", 2)
    path = f"{U}/u1/update_user_id"
    assert ok(api.patch(path, params=CUSTOM, json={"new_user_id": "u1-new"})) == {}
    moved = ok(api.get(f"{U}/u1-new", params=CUSTOM))["user"]
    assert moved["open_id"] == u1["open_id"]
    refused(api.get(f"{U}/u1", params=CUSTOM), 99992360)
    new = f"{U}/u1-new/update_user_id"
    refused(api.patch(new, params=CUSTOM, json={"new_user_id": "u2"}), 41011)
    refused(api.patch(new, params=CUSTOM, json={"new_user_id": "x" * 65}), 41054)
    refused(api.patch(new, params=CUSTOM, json={}), 40001)
    refused(api.patch(f"{U}/nobody/update_user_id", params=CUSTOM, json={"new_user_id": "n"}),
            99992360)
