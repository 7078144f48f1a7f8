"""Custom profile attributes (orgsync.custom_attrs): per-type value checks, wire elements,
field-level changes, the once-only report of an attribute not opened to the API, and the
tenant's definitions and write rules over a real socket (the sandbox's ``custom_attrs``
knob)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orgsync.custom_attrs import (
    Attribute,
    changes,
    definitions,
    from_wire,
    parse,
    to_wire,
    unavailable,
)
from orgsync.errors import FeishuError
from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger
from orgsync.runner import run_once
from orgsync.sandbox import SandboxServer
from tests.sandbox_run import SCALE, config, run
from tests.test_profile_sync import sdk_user, writes

TENANT: list[dict[str, Any]] = [  # GET custom_attrs items (§6), as the sandbox knob takes them
    {"id": "C-1", "type": "TEXT", "i18n_name": [{"locale": "zh_cn", "value": "工位电话"},
                                                {"locale": "en_us", "value": "Desk phone"}]},
    {"id": "C-2", "type": "HREF", "i18n_name": [{"locale": "zh_cn", "value": "主页"}]},
    {"id": "C-3", "type": "ENUMERATION", "i18n_name": [{"locale": "zh_cn", "value": "T恤尺码"}],
     "options": {"default_option_id": "o1", "option_type": "TEXT",
                 "options": [{"id": "o1", "value": "S", "name": "S"},
                             {"id": "o2", "value": "M", "name": "M"}]}},
    {"id": "C-4", "type": "GENERIC_USER", "i18n_name": [{"locale": "zh_cn", "value": "导师"}]},
    {"id": "C-5", "type": "TEXT", "i18n_name": [{"locale": "zh_cn", "value": "身份证"}],
     "api_enabled": False},
]
ATTRS = definitions(a for a in TENANT if a.get("api_enabled", True))


def test_definitions_are_found_by_every_i18n_name() -> None:
    assert ATTRS["Desk phone"] is ATTRS["工位电话"]
    assert ATTRS["T恤尺码"] == Attribute("C-3", "T恤尺码", "ENUMERATION", {"S": "o1", "M": "o2"})


@pytest.mark.parametrize(("name", "text", "value"), [
    ("工位电话", "8012", "8012"),
    ("主页", "Wiki|https://wiki.example.com/zw", {"text": "Wiki", "url": "https://wiki.example.com/zw"}),
    ("主页", "https://a.example.com", {"text": "https://a.example.com", "url": "https://a.example.com"}),
    ("T恤尺码", "M", "M"),
    ("导师", "E2", "E2"),
])
def test_values_parse_per_type(name: str, text: str, value: Any) -> None:
    assert parse(ATTRS[name], text) == value


@pytest.mark.parametrize(("name", "text", "reason"), [
    ("工位电话", "9" * 101, "is 101 characters long; Feishu takes at most 100"),
    ("主页", "Wiki|ftp://x", "'Wiki|ftp://x' is not a link: write 'title|https://…' or a URL"),
    ("T恤尺码", "XL", "'XL' is not one of its options (S, M)"),
])
def test_values_the_definition_does_not_take_are_refused_with_the_reason(
        name: str, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + reason.replace("|", r"\|").replace("(", r"\(")
                       .replace(")", r"\)") + "$"):
        parse(ATTRS[name], text)


def test_wire_elements_round_trip() -> None:
    values = {"工位电话": "8012", "主页": {"text": "Wiki", "url": "https://w.example.com"},
              "T恤尺码": "M", "导师": "E2"}
    wire = to_wire(values, ATTRS)
    assert wire == [
        {"type": "ENUMERATION", "id": "C-3", "value": {"option_id": "o2"}},
        {"type": "HREF", "id": "C-2", "value": {"text": "Wiki", "url": "https://w.example.com",
                                                "pc_url": "https://w.example.com"}},
        {"type": "GENERIC_USER", "id": "C-4", "value": {"generic_user": {"id": "E2", "type": 1}}},
        {"type": "TEXT", "id": "C-1", "value": {"text": "8012"}},
    ]
    assert from_wire(wire, ATTRS) == {"工位电话": "8012", "主页": values["主页"],
                                      "T恤尺码": "M", "导师": "E2"}


def test_a_change_in_one_attribute_shows_as_that_one() -> None:
    old = {"工位电话": "8012", "主页": {"text": "Wiki", "url": "https://a.example.com"},
           "T恤尺码": "S"}
    new = {"工位电话": "8012", "主页": {"text": "Wiki", "url": "https://b.example.com"},
           "导师": "E2"}
    assert changes(old, new) == [
        ("T恤尺码", "S", None),
        ("主页.url", "https://a.example.com", "https://b.example.com"),
        ("导师", None, "E2"),
    ]
    assert changes(new, new) == []


def test_an_attribute_not_opened_to_the_api_is_reported_once(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    assert unavailable(["身份证", "工位电话"], ATTRS, ledger) == ["身份证"]
    assert unavailable(["身份证", "工位电话"], ATTRS, ledger) == []
    # Opened, then closed again: reported anew.
    assert unavailable(["工位电话"], ATTRS, ledger) == []
    assert unavailable(["身份证"], ATTRS, ledger) == ["身份证"]


def test_the_tenant_lists_opened_attributes_and_checks_writes(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """Over the socket: the definitions orgsync reads, the elements it writes as the tenant
    keeps them, and the tenant's codes for elements it refuses."""
    sandbox.configure(custom_attrs=TENANT)
    (tmp_path / "departments.csv").write_text("department_id,name,parent_id\n", "utf-8")
    (tmp_path / "employees.csv").write_text("employee_id,name,mobile,department_ids\n", "utf-8")
    cfg = config(sandbox, tmp_path, tmp_path / "l.db")
    values = {"工位电话": "8012", "主页": {"text": "Wiki", "url": "https://w.example.com"},
              "T恤尺码": "M"}

    async def go() -> tuple[dict[str, Attribute], dict[str, Any], list[int]]:
        async with FeishuClient(cfg.feishu) as client:
            attrs = definitions(await client.custom_attributes())
            await client.create_user({"user_id": "E1", "name": "张伟", "mobile": "+8613800000001",
                                      "department_ids": ["0"], "employee_type": 1})
            closed = {"type": "TEXT", "id": "C-5", "value": {"text": "110"}}
            await client.patch_user("E1", {"custom_attrs": [*to_wire(values, attrs), closed]})
            user = await client.get_user("E1")
            codes = []
            for bad in ({"type": "TEXT", "id": "C-9", "value": {"text": "x"}},
                        {"type": "HREF", "id": "C-2", "value": {"text": "Wiki", "url": ""}}):
                with pytest.raises(FeishuError) as refused:
                    await client.patch_user("E1", {"custom_attrs": [bad]})
                codes.append(refused.value.code)
            return attrs, user, codes

    attrs, user, codes = asyncio.run(go())
    assert sorted({a.id for a in attrs.values()}) == ["C-1", "C-2", "C-3", "C-4"]
    assert from_wire(user["custom_attrs"], attrs) == values
    assert {a["id"] for a in sandbox.tenant.find_user_any("E1").custom_attrs} == {"C-1", "C-2", "C-3"}
    assert codes == [41045, 41048]


EMPLOYEES = (  # E3's size is not an option of the tenant's: E3 is held
    "employee_id,name,email,mobile,department_ids,custom.工位电话,custom.主页,custom.T恤尺码,"
    "custom.导师,custom.身份证\n"
    "E1,张伟,e1@example.com,+8613800000001,D1,8012,Wiki|https://w.example.com/e1,M,,110\n"
    "E2,李娜,e2@example.com,+8613800000002,D1,,https://b.example.com,S,E1,\n"
    "E3,王芳,e3@example.com,+8613800000003,D1,,,XL,,\n")


def test_custom_attributes_from_csv_end_to_end(sandbox: SandboxServer, tmp_path: Path) -> None:
    """custom.<name> columns are checked per type, written as Feishu's elements, read back
    as the same values (a second run and a resync write nothing), a change of one part of
    one attribute is that one change, and the attribute not open to the API is reported
    on the first run only."""
    sandbox.configure(custom_attrs=TENANT, rate_scale=SCALE, app_id="cli_custom_attrs")
    (tmp_path / "departments.csv").write_text("department_id,name,parent_id\nD1,研发部,\n",
                                              "utf-8")
    (tmp_path / "employees.csv").write_text(EMPLOYEES, "utf-8")
    cfg = config(sandbox, tmp_path, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    out = run(cfg, ledger)
    held_e3 = ("employees.csv:4: employee E3: custom.T恤尺码: 'XL' is not one of its options "
               "(S, M) (held back)")
    assert [str(i) for i in out.plan.issues] == [
        "employee: custom.身份证: custom attribute '身份证' is not open to the API (or not "
        "defined): open it to the API in 管理后台 › 组织架构 › 字段管理 › 字段设置 › API 调用设置 "
        "(允许开放平台通讯录 API 调用), or drop the column; its values are not written (cleared)",
        held_e3]
    held = {u.user_id: sorted(u.custom_attrs, key=lambda a: a["id"])
            for u in sandbox.tenant.users.values()}
    assert held == {
        "E1": [{"type": "TEXT", "id": "C-1", "value": {"text": "8012"}},
               {"type": "HREF", "id": "C-2", "value": {
                   "text": "Wiki", "url": "https://w.example.com/e1",
                   "pc_url": "https://w.example.com/e1"}},
               {"type": "ENUMERATION", "id": "C-3", "value": {"option_id": "o2"}}],
        "E2": [{"type": "HREF", "id": "C-2", "value": {
                   "text": "https://b.example.com", "url": "https://b.example.com",
                   "pc_url": "https://b.example.com"}},
               {"type": "ENUMERATION", "id": "C-3", "value": {"option_id": "o1"}},
               {"type": "GENERIC_USER", "id": "C-4",
                "value": {"generic_user": {"id": "E1", "type": 1}}}]}
    e2 = sdk_user(sandbox, "E2")  # the official SDK's models read them
    assert sorted((a.id, a.type) for a in e2.custom_attrs) == [
        ("C-2", "HREF"), ("C-3", "ENUMERATION"), ("C-4", "GENERIC_USER")]

    before = len(sandbox.requests())
    again = run(cfg, ledger)
    assert again.plan.empty
    assert [str(i) for i in again.plan.issues] == [held_e3]
    assert writes(sandbox, before) == []
    assert asyncio.run(run_once(cfg, ledger, apply=True, full=True)).plan.empty

    (tmp_path / "employees.csv").write_text(
        EMPLOYEES.replace("https://w.example.com/e1", "https://w.example.com/zw"), "utf-8")
    out = run(cfg, ledger)
    [op] = out.plan.operations
    assert [(c.field, c.old, c.new) for c in op.changes] == [
        ("custom_attrs.主页.url", "https://w.example.com/e1", "https://w.example.com/zw")]
    assert [a["value"]["url"] for a in sandbox.tenant.find_user_any("E1").custom_attrs
            if a["id"] == "C-2"] == ["https://w.example.com/zw"]
    assert run(cfg, ledger).plan.empty
