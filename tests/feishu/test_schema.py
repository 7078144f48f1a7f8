"""The field table: every canonical field once, and both directions agree."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from orgsync.feishu import schema
from orgsync.model import Department, Employee, EmployeeType

PERSON = Employee(
    key="E1", name="张三", department_keys=("D1", "D2"), en_name="San Zhang",
    email="san@example.com", mobile="+8613800000001", manager_key="E0", job_title="工程师",
    employee_no="0001", employee_type=EmployeeType.INTERN, join_date=date(2026, 1, 5), city="北京",
)
UNIT = Department(key="D2", name="平台部", parent_key="D1", leader_key="E1", order=20,
                  en_name="Platform")


def _names(rows: tuple[schema.FeishuField, ...]) -> list[str]:
    return [f.name for f in rows]


def test_every_model_field_has_exactly_one_row() -> None:
    """A field added to the model without a row (or named twice) fails here."""
    employee = [f.name for f in dataclasses.fields(Employee) if f.name not in ("status", "profile")]
    assert _names(schema.USER) == employee
    assert _names(schema.DEPARTMENT) == [f.name for f in dataclasses.fields(Department)]
    assert not set(schema.PROFILE_NAMES) & {*employee, "status", "profile"}
    # custom_employee_type shares employee_type with the base row, on purpose (its row says).
    for rows in (schema.USER + tuple(f for f in schema.PROFILE
                                     if f.name != "custom_employee_type"), schema.DEPARTMENT):
        wires = [f.wire for f in rows]
        assert len(set(wires)) == len(wires)
        assert all(f.read for f in rows), "every row names the permissions that return it"


def test_fields_feishu_cannot_clear_are_kept_when_unset() -> None:
    # mobile: required by Feishu (41010); validation holds a row without one. user_order:
    # Feishu's default 0 is a place like any other.
    # custom_attrs: whether and how Feishu clears one attribute is UNCONFIRMED (§1.5);
    # avatar: an empty cell leaves the picture (whether "" clears it is UNCONFIRMED).
    assert {"join_date", "employee_no", "order", "mobile", "user_order",
            "custom_attrs", "avatar"} == schema.KEEP_WHEN_UNSET


def test_user_created_then_read_back_is_the_same_record() -> None:
    body = schema.user_create_body(PERSON.fields(), ["D1", "D2"], user_id="E1")
    assert body == {
        "user_id": "E1", "department_ids": ["D1", "D2"], "name": "张三", "en_name": "San Zhang",
        "email": "san@example.com", "mobile": "+8613800000001", "job_title": "工程师",
        "employee_no": "0001", "employee_type": 2, "join_time": 1767571200, "city": "北京",
    }
    # Feishu answers with the object it holds; the manager is linked by its own PATCH.
    answer: dict[str, Any] = {**body, **schema.manager_body("E0")}
    assert schema.employee_from_feishu(answer, {}, {}) == PERSON


def test_user_patch_sends_the_clearing_value_of_each_row() -> None:
    cleared = dataclasses.replace(PERSON, en_name=None, job_title=None, city=None, email=None)
    body = schema.user_patch_body(cleared.fields(), ["en_name", "job_title", "city", "email",
                                                     "department_keys"], ["od-1", "od-2"])
    # job_title: a single space is the documented clear (feishu-api-more.md §1.5).
    assert body == {"en_name": "", "job_title": " ", "city": "", "email": "",
                    "department_ids": ["od-1", "od-2"],
                    "orders": [{"department_id": "od-1", "department_order": 2},
                               {"department_id": "od-2", "department_order": 1}]}
    assert schema.manager_body(None) == {"leader_user_id": ""}


def test_the_primary_department_is_read_from_the_orders() -> None:
    """Feishu's primary is the largest department_order (§1.6), wherever department_ids
    list it; ties keep Feishu's order."""
    answer: dict[str, Any] = {
        "user_id": "E1", "name": "张三", "department_ids": ["D1", "D2", "D3"],
        "orders": [{"department_id": "D1", "department_order": 1, "is_primary_dept": False},
                   {"department_id": "D2", "department_order": 0, "is_primary_dept": False},
                   {"department_id": "D3", "department_order": 5, "is_primary_dept": True}]}
    assert schema.employee_from_feishu(answer, {}, {}).department_keys == ("D3", "D1", "D2")
    del answer["orders"]
    assert schema.employee_from_feishu(answer, {}, {}).department_keys == ("D1", "D2", "D3")


def test_a_field_feishu_leaves_out_is_unread_not_empty() -> None:
    answer = {"user_id": "E1", "name": "张三", "department_ids": ["D1"], "email": ""}
    unread = schema.unread_fields(answer, schema.USER)
    assert "email" not in unread
    assert "key" not in unread
    assert {"mobile", "job_title", "manager_key", "en_name"} <= unread
    assert schema.USER_READ["email"] == ("contact:user.email:readonly",)


def test_department_created_then_read_back_is_the_same_record() -> None:
    body = schema.department_create_body(UNIT, "D2", "D1")
    assert body == {"department_id": "D2", "name": "平台部", "parent_department_id": "D1",
                    "i18n_name": {"zh_cn": "平台部", "en_us": "Platform"}, "order": "20"}
    answer = {**body, **schema.leader_body("E1")}
    assert schema.department_from_feishu(answer, {}, {}) == UNIT
    assert schema.leader_body(None) == {"leaders": []}


def test_unknown_employee_type_reads_as_regular() -> None:
    """A tenant's custom type (6 and up) has no canonical member."""
    answer = {"user_id": "E9", "name": "x", "employee_type": 7}
    assert schema.employee_from_feishu(answer, {}, {}).employee_type is EmployeeType.REGULAR


def test_profile_fields_cross_both_ways_and_clear() -> None:
    """A profile field is one row: the create body carries it, a read gives it back in
    ``profile``, and a PATCH of a value the source dropped sends the row's clear."""
    person = dataclasses.replace(PERSON, profile={"work_station": "A-3-17", "gender": 2})
    body = schema.user_create_body(person.fields(), ["D1", "D2"], user_id="E1")
    assert (body["work_station"], body["gender"]) == ("A-3-17", 2)
    answer: dict[str, Any] = {**body, **schema.manager_body("E0")}
    assert schema.employee_from_feishu(answer, {}, {}) == person
    # Feishu's defaults ("" and 0, secret) read as no value.
    unset = {**answer, "work_station": "", "gender": 0}
    assert schema.employee_from_feishu(unset, {}, {}).profile == {}
    assert schema.user_patch_body(PERSON.fields(), ["work_station", "gender"]) == {
        "work_station": "", "gender": 0}


def test_profile_values_parse_from_source_text() -> None:
    rows = {f.name: f for f in schema.PROFILE}
    gender = rows["gender"].parse
    assert gender is not None
    assert [gender(t) for t in ("男", "Female", "M", "其他", "保密", "0")] == [1, 2, 1, 3, None, None]
    with pytest.raises(ValueError, match="'unicorn' is not a gender"):
        gender("unicorn")
    station = rows["work_station"].parse
    assert station is not None
    with pytest.raises(ValueError, match="256 characters long; Feishu takes at most 255"):
        station("x" * 256)
