"""Job levels and job families in the sandbox, over its socket (feishu-api-more.md §5.2, §5.3)."""

from __future__ import annotations

import httpx

from orgsync.sandbox import SandboxServer

LEVELS, FAMILIES = "/open-apis/contact/v3/job_levels", "/open-apis/contact/v3/job_families"


def test_create_list_rename_and_refuse(sandbox: SandboxServer,
                                       sandbox_api: httpx.Client) -> None:
    """Create, list (paged, by name), rename; duplicates and bad ids have their codes; the
    11th call in a second is refused (10/s)."""
    burst = [sandbox_api.post(FAMILIES, json={"name": f"F{n}", "status": True}).json()["code"]
             for n in range(11)]
    assert burst == [0] * 10 + [99991400]
    sandbox.configure(rate_limits=False)
    made = sandbox_api.post(LEVELS, json={"name": "P7", "status": True}).json()
    assert made["code"] == 0
    level_id = made["data"]["job_level"]["job_level_id"]
    for n in range(11):
        assert sandbox_api.post(LEVELS, json={"name": f"L{n}", "status": True}).json()["code"] == 0
    first = sandbox_api.get(LEVELS).json()["data"]
    assert (len(first["items"]), first["has_more"]) == (10, True)  # default page size 10
    rest = sandbox_api.get(LEVELS, params={"page_token": first["page_token"]}).json()["data"]
    assert [i["name"] for i in rest["items"]] == ["L9", "L10"]
    assert [i["job_level_id"] for i in sandbox_api.get(LEVELS, params={"name": "P7"})
            .json()["data"]["items"]] == [level_id]
    assert sandbox_api.post(LEVELS, json={"name": "P7", "status": True}).json()["code"] == 42305
    assert sandbox_api.post(LEVELS, json={"name": "", "status": True}).json()["code"] == 42303
    assert sandbox_api.post(FAMILIES, json={"name": "x" * 101, "status": True}) \
        .json()["code"] == 42404
    renamed = sandbox_api.put(f"{LEVELS}/{level_id}", json={"name": "P7 Senior"}).json()
    assert renamed["data"]["job_level"]["name"] == "P7 Senior"
    missing = sandbox_api.put(f"{FAMILIES}/nope", json={"name": "x"})
    assert (missing.status_code, missing.json()["code"]) == (404, 42402)


def test_a_user_points_at_existing_entries_only(sandbox: SandboxServer,
                                                sandbox_api: httpx.Client) -> None:
    """A user's job_level_id / job_family_id must exist (44044 / 44045) and reads back."""
    level = sandbox_api.post(LEVELS, json={"name": "P7", "status": True}).json()["data"]
    family = sandbox_api.post(FAMILIES, json={"name": "研发", "status": True}).json()["data"]
    users = "/open-apis/contact/v3/users"
    base = {"name": "张三", "mobile": "+8613800000001", "department_ids": ["0"],
            "employee_type": 1, "user_id": "u1"}
    q = {"user_id_type": "user_id", "department_id_type": "department_id"}
    assert sandbox_api.post(users, params=q, json={**base, "job_level_id": "nope"}) \
        .json()["code"] == 44044
    assert sandbox_api.post(users, params=q, json={**base, "job_family_id": "nope"}) \
        .json()["code"] == 44045
    ok = sandbox_api.post(users, params=q, json={
        **base, "job_level_id": level["job_level"]["job_level_id"],
        "job_family_id": family["job_family"]["job_family_id"]}).json()
    assert ok["code"] == 0
    assert (ok["data"]["user"]["job_level_id"], ok["data"]["user"]["job_family_id"]) == (
        level["job_level"]["job_level_id"], family["job_family"]["job_family_id"])
