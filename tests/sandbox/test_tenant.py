"""The tenant state machine without HTTP: limits that are slow to reach over a socket,
paging and token rules."""

from __future__ import annotations

import pytest

from orgsync.sandbox.tenant import (
    ApiError,
    IdTypes,
    SandboxClock,
    Tenant,
    TokenStore,
    normalize_mobile,
    paginate,
)

CUSTOM = IdTypes("user_id", "department_id")


def test_children_limit_is_1000() -> None:
    """The 1001st child of one parent → 43013."""
    tenant = Tenant()
    for i in range(1000):
        tenant.create_department({"name": f"d{i}", "parent_department_id": "0"}, CUSTOM)
    with pytest.raises(ApiError) as refused:
        tenant.create_department({"name": "one more", "parent_department_id": "0"}, CUSTOM)
    assert refused.value.code == 43013


def test_paginate_round_trip_and_scope() -> None:
    """Tokens walk the list once and are rejected by another listing."""
    items = list(range(7))
    page, more, token = paginate(items, "3", None, "a")
    assert (page, more) == ([0, 1, 2], True)
    page, more, token = paginate(items, "3", token, "a")
    assert page == [3, 4, 5]
    with pytest.raises(ApiError) as refused:
        paginate(items, "3", token, "b")
    assert refused.value.code == 40012
    page, more, token = paginate(items, "3", token, "a")
    assert (page, more, token) == ([6], False, None)


@pytest.mark.parametrize(("given", "normalized"), [
    ("13011111111", "+8613011111111"),
    ("+8613011111111", "+8613011111111"),
    ("+41446681800", "+41446681800"),
])
def test_normalize_mobile(given: str, normalized: str) -> None:
    """Mainland numbers gain +86; others keep their +country code."""
    assert normalize_mobile(given) == normalized


@pytest.mark.parametrize("bad", ["", "1301111111", "+8612345", "446681800", "+0123456789"])
def test_invalid_mobiles(bad: str) -> None:
    """Malformed mobiles → 41004."""
    with pytest.raises(ApiError) as refused:
        normalize_mobile(bad)
    assert refused.value.code == 41004


def test_token_store_rules() -> None:
    """Same token while ≥ 30 min remain; then a new one; revoked tokens are dead."""
    clock = SandboxClock()
    store = TokenStore(clock)
    first, expire = store.issue("cli", 7200)
    assert (expire, store.app_for(first)) == (7200, "cli")
    clock.advance(5000)
    assert store.issue("cli", 7200)[0] == first
    clock.advance(500)
    second, _ = store.issue("cli", 7200)
    assert second != first
    assert store.app_for(first) == "cli"
    clock.advance(1800)
    assert store.app_for(first) is None
    store.revoke_all()
    assert store.app_for(second) is None


def test_dept_order_collision_on_move_goes_last() -> None:
    """A moved department keeps its order unless a new sibling has it; then it goes last."""
    tenant = Tenant()
    for dept_id, parent, order in (("a", "0", "1"), ("b", "0", "2"), ("a1", "a", "1"),
                                   ("a2", "a", "5"), ("b1", "b", "1")):
        tenant.create_department({"name": dept_id, "parent_department_id": parent,
                                  "department_id": dept_id, "order": order}, CUSTOM)
    moved = tenant.patch_department("b1", {"parent_department_id": "a"}, CUSTOM)
    assert moved["department"]["order"] == "6"


def test_resign_drops_leadership() -> None:
    """A resigned user no longer leads departments or reports."""
    tenant = Tenant()
    tenant.create_department({"name": "D", "parent_department_id": "0", "department_id": "d"},
                             CUSTOM)
    for user_id, mobile in (("boss", "13000000001"), ("dev", "13000000002")):
        tenant.create_user({"user_id": user_id, "name": user_id, "mobile": mobile,
                            "department_ids": ["d"], "employee_type": 1}, CUSTOM)
    tenant.patch_user("dev", {"leader_user_id": "boss"}, CUSTOM)
    tenant.patch_department("d", {"leader_user_id": "boss"}, CUSTOM)
    tenant.delete_user("boss", None, CUSTOM)
    assert tenant.get_department("d", CUSTOM)["department"]["leader_user_id"] == ""
    assert tenant.get_user("dev", CUSTOM)["user"]["leader_user_id"] == ""
