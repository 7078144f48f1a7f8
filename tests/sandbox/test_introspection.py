"""The sandbox tells the app what it may see and do (feishu-api-more.md §2), per its knobs,
and dates every answer from its clock."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from orgsync.sandbox import SandboxServer

CUSTOM = {"department_id_type": "department_id", "user_id_type": "user_id"}
D = "/open-apis/contact/v3/departments"
SCOPES = "/open-apis/contact/v3/scopes"


def ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, reply.text
    assert reply.json()["code"] == 0, reply.text
    return reply.json()["data"]


def _tree(api: httpx.Client) -> None:
    for dept, parent in (("eng", "0"), ("ops", "0"), ("web", "eng")):
        ok(api.post(D, params=CUSTOM, json={"name": dept, "department_id": dept,
                                            "parent_department_id": parent}))
    ok(api.post("/open-apis/contact/v3/users", params=CUSTOM, json={
        "user_id": "u1", "name": "U1", "mobile": "+8613800000001", "department_ids": ["0"],
        "employee_type": 1}))


def test_all_members_lists_the_roots_first_level_and_direct_users(
        sandbox_api: httpx.Client) -> None:
    _tree(sandbox_api)
    data = ok(sandbox_api.get(SCOPES, params=CUSTOM))
    assert data == {"department_ids": ["eng", "ops"], "user_ids": ["u1"], "group_ids": [],
                    "has_more": False}
    assert ok(sandbox_api.get(f"{D}/0/children", params={**CUSTOM, "page_size": "1"}))


def test_some_departments_lists_exactly_those_and_refuses_the_root(
        sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    _tree(sandbox_api)
    sandbox.configure(contact_scope=["web"])
    assert ok(sandbox_api.get(SCOPES, params=CUSTOM)) == {
        "department_ids": ["web"], "user_ids": [], "group_ids": [], "has_more": False}
    reply = sandbox_api.get(f"{D}/0/children", params=CUSTOM)
    assert (reply.status_code, reply.json()["code"]) == (403, 40004)


def test_user_ids_need_the_employee_id_scope(sandbox: SandboxServer,
                                             sandbox_api: httpx.Client) -> None:
    _tree(sandbox_api)
    sandbox.configure(permissions=["contact:contact.base:readonly"])
    assert ok(sandbox_api.get(SCOPES, params=CUSTOM))["user_ids"] == []


def test_application_scopes_follow_the_permissions_knob(sandbox: SandboxServer,
                                                        sandbox_api: httpx.Client) -> None:
    sandbox.configure(permissions=["contact:contact", "contact:custom:thing"])
    scopes = {s["scope_name"]: s["grant_status"]
              for s in ok(sandbox_api.get("/open-apis/application/v6/scopes"))["scopes"]}
    assert scopes["contact:contact"] == 1
    assert scopes["contact:custom:thing"] == 1
    assert scopes["contact:user.email:readonly"] == 2


def test_answers_carry_a_date_from_the_sandbox_clock(sandbox: SandboxServer,
                                                     sandbox_api: httpx.Client) -> None:
    sandbox.advance_clock(3600)
    for reply in (sandbox_api.get(SCOPES, params=CUSTOM),
                  sandbox_api.get("/open-apis/nowhere")):
        dates = reply.headers.get_list("date")
        assert len(dates) == 1
        skew = parsedate_to_datetime(dates[0]).timestamp() - time.time()
        assert 3590 < skew < 3610
