"""connectors.mapping: paths, templates, transforms, value maps, canonical coercion, collection."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from connectors.mapping import (
    FieldPath,
    Mapped,
    MappingProblem,
    collect,
    employee_from,
    map_record,
    normalize_mobile,
    parse_date,
    parse_rule,
    profile_fields,
    rules,
)
from connectors.source_options import deep_merge, merge_preset
from orgsync.errors import ConfigError
from orgsync.model import EmployeeType, Status
from orgsync.source import EntityKind

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
RECORD: dict[str, Any] = {
    "id": "u1", "Mail": "ZS@Example.com ",
    "name": {"givenName": "三", "familyName": "张"},
    "emails": [{"value": "home@x.com", "type": "home"},
               {"value": "work@x.com", "type": "work", "primary": True}],
    "a.b": {"c": "dotted"},
    ENT: {"employeeNumber": "000042", "manager": {"value": "u0"}},
    "tags": ["x", "y"], "uac": "514", "active": False,
}


class TestPaths:
    @pytest.mark.parametrize(("path", "value"), [
        ("id", "u1"),
        ("mail", "ZS@Example.com "),  # attribute names match case-insensitively (LDAP)
        ("name.familyName", "张"),
        ("emails[1].value", "work@x.com"),
        ("emails[-1].type", "work"),
        ("emails[primary=true].value", ["work@x.com"]),
        ("emails[type=home].value", ["home@x.com"]),
        ("emails.value", ["home@x.com", "work@x.com"]),
        ('"a.b".c', "dotted"),
        (f"{ENT}:manager.value", "u0"),
        ("tags[*]", ["x", "y"]),
        ("missing.deeper", None),
        ("emails[5].value", None),
    ])
    def test_get(self, path: str, value: Any) -> None:
        """Each path syntax reaches its value (None when a step is missing)."""
        assert FieldPath.parse(path).get(RECORD) == value

    @pytest.mark.parametrize("bad", ["", "a..b", "a[", "a[x]", "a.", "a]b"])
    def test_bad_paths(self, bad: str) -> None:
        """Malformed paths are rejected when the config is read."""
        with pytest.raises(ValueError, match=r"path|position|ends with|selector"):
            FieldPath.parse(bad)


class TestRules:
    def test_template_coalesce_transforms_and_constants(self) -> None:
        """Templates fill placeholders; `from` lists coalesce; transforms run in order."""
        table = rules({
            "key": "id", "name": "{name.familyName}{name.givenName}",
            "email": {"from": ["emails[primary=true].value", "Mail"], "transforms": ["upper"]},
            "en_name": {"template": "{name.givenName} {nope}"},
            "city": {"value": "北京"},
            "employee_no": f"{ENT}:employeeNumber",
            "manager_key": f"{ENT}:manager.value",
            "status": {"from": "uac", "transforms": [{"bit": 2}],
                       "map": {"true": "terminated", "false": "active"}},
        }, "employee")
        mapped = map_record(RECORD, table)
        assert mapped.problems == []
        assert mapped.values == {
            # canonical coercion comes last: emails are lower-cased whatever the transforms
            "key": "u1", "name": "张三", "email": "work@x.com", "en_name": "三", "city": "北京",
            "employee_no": "000042", "manager_key": "u0", "status": Status.TERMINATED,
        }

    def test_value_map_fallback_and_default(self) -> None:
        """`*` catches unmapped values; `default` fills an empty result; maps ignore case."""
        rule = parse_rule({"from": "t", "map": {"Full-time": "regular", "*": "contractor"},
                           "default": "intern"})
        assert [rule.value({"t": v}) for v in ("FULL-TIME", "Temp", None)] == [
            "regular", "contractor", "intern"]
        strict = parse_rule({"from": "t", "map": {"a": 1}})
        with pytest.raises(MappingProblem, match="'b' is not in the value map"):
            strict.value({"t": "b"})

    def test_split_join_regex_first(self) -> None:
        """List transforms: split, join, regex extraction, first."""
        assert parse_rule({"from": "d", "transforms": [{"split": ","}]}).value(
            {"d": "a, b,,c"}) == ["a", "b", "c"]
        assert parse_rule({"from": "tags", "transforms": [{"join": "|"}]}).value(RECORD) == "x|y"
        assert parse_rule({"from": "dn", "transforms": [{"regex": "^CN=([^,]+)"}]}).value(
            {"dn": "CN=John Doe,OU=Eng"}) == "John Doe"
        assert parse_rule({"from": "tags", "transforms": ["first"]}).value(RECORD) == "x"

    @pytest.mark.parametrize(("spec", "text"), [
        ({"from": "x", "transforms": ["shout"]}, "unknown transform 'shout'"),
        ({"from": "x", "transforms": [{"bit": "two"}]}, "bad argument 'two' for transform 'bit'"),
        ({"from": "x", "colour": 1}, "unknown key 'colour'"),
        ({"transforms": ["strip"]}, "needs 'from', 'template', 'value' or 'default'"),
        ({"template": "no placeholder"}, "has no {field} placeholder"),
    ])
    def test_bad_rules(self, spec: dict[str, Any], text: str) -> None:
        """Bad rule specs are rejected with the reason."""
        with pytest.raises(ValueError, match=text):
            parse_rule(spec)

    def test_unknown_field_is_a_config_error(self) -> None:
        """An unknown canonical field names the key and suggests the closest one."""
        with pytest.raises(ConfigError, match="did you mean 'job_title'") as err:
            rules({"key": "id", "jobtitle": "title"}, "employee")
        assert err.value.key == "preset.employee.jobtitle"


class TestCoercion:
    @pytest.mark.parametrize(("field", "value", "expected"), [
        ("employee_type", "实习", EmployeeType.INTERN),
        ("employee_type", "３", EmployeeType.OUTSOURCED),
        ("status", "离职", Status.TERMINATED),
        ("status", True, Status.ACTIVE),
        ("department_keys", "D1；D2", ("D1", "D2")),
        ("department_keys", ["D1", "D2"], ("D1", "D2")),
        ("join_date", "0000-00-00", None),
        ("order", "１０", 10),
        ("email", ["first@x.com", "second@x.com"], "first@x.com"),
        ("key", 42, "42"),
    ])
    def test_canonical_values(self, field: str, value: Any, expected: Any) -> None:
        """Values become the model's types: enums, tuples, dates, ints, first of a list."""
        entity: EntityKind = "department" if field == "order" else "employee"
        table = rules({"key": "k", field: "v"} if field != "key" else {"key": "v"}, entity)
        assert map_record({"k": "K", "v": value}, table).values[field] == expected

    @pytest.mark.parametrize(("field", "value", "reason"), [
        ("employee_type", "boss", "'boss' is not an employee type"),
        ("status", "on leave", "'on leave' is not active or terminated"),
        ("employee_no", "1.2E+5", "looks like a number Excel turned into scientific notation"),
        ("mobile", "abc", "'abc' is not a valid mobile number"),
        ("email", {"value": "x"}, "is dict, not text; pick a field inside it"),
    ])
    def test_problems_name_the_field(self, field: str, value: Any, reason: str) -> None:
        """A value that cannot be coerced is a (field, reason) problem; the record keeps its key."""
        mapped = map_record({"k": "K", "v": value}, rules({"key": "k", field: "v"}, "employee"))
        assert mapped.key == "K"
        [(got_field, got_reason)] = mapped.problems
        assert got_field == field
        assert reason in got_reason

    @pytest.mark.parametrize(("text", "expected"), [
        ("2024/3/5", date(2024, 3, 5)), ("2024-03-05", date(2024, 3, 5)),
        ("2024年3月5日", date(2024, 3, 5)), ("20240305", date(2024, 3, 5)),
        ("05.03.2024", date(2024, 3, 5)), ("45356", date(2024, 3, 5)),
        ("2024-03-05T23:00:00Z", date(2024, 3, 5)),
    ])
    def test_dates(self, text: str, expected: date) -> None:
        """The default date formats, ISO timestamps and Excel serial days."""
        assert parse_date(text) == expected

    def test_ambiguous_dates_need_a_format(self) -> None:
        """3/5/2024 is refused by default and read as configured."""
        with pytest.raises(MappingProblem, match="ambiguous"):
            parse_date("3/5/2024")
        rule = parse_rule({"from": "d", "transforms": [{"date": ["%d/%m/%Y"]}]})
        assert rule.value({"d": "3/5/2024"}) == date(2024, 5, 3)

    @pytest.mark.parametrize(("text", "region", "expected"), [
        ("138 0013 8000", "CN", "+8613800138000"),
        ("+86-138-0013-8000", "CN", "+8613800138000"),
        ("１３８００１３８０００", "CN", "+8613800138000"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("+44 20 7946 0958", "CN", "+442079460958"),
    ])
    def test_mobiles_to_e164(self, text: str, region: str, expected: str) -> None:
        """Mobiles are normalised to E.164 with phonenumbers (region for national forms)."""
        assert normalize_mobile(text, region) == expected


class TestCollect:
    def test_duplicates_missing_keys_and_problems(self) -> None:
        """Repeated keys are held everywhere; keyless records are reported; problems hold."""
        items = [("r1", Mapped("A", {"key": "A"})), ("r2", Mapped(None, {}, [("key", "empty")])),
                 ("r3", Mapped("B", {"key": "B"}, [("mobile", "bad")])),
                 ("r4", Mapped("A", {"key": "A"})), ("r5", Mapped("C", {"key": "C"}))]
        out = collect(items, "employee")
        assert list(out.records) == ["C"]
        assert out.held == {"A", "B"}
        assert [str(i) for i in out.issues] == [
            "r2: employee: key: empty (held back)",
            "r3: employee B: mobile: bad (held back)",
            "r1: employee A: key: key 'A' is also at r4 (held back)",
            "r4: employee A: key: key 'A' is also at r1 (held back)",
        ]

    def test_merges(self) -> None:
        """Presets merge key by key; switching departments.from replaces the section."""
        preset = {"a": {"x": 1, "y": 2}, "departments": {"from": "ou", "key": "entryUUID"}}
        assert deep_merge(preset, {"a": {"y": None}}) == {
            "a": {"x": 1, "y": None}, "departments": {"from": "ou", "key": "entryUUID"}}
        assert merge_preset(preset, {"departments": {"from": "attribute", "field": "d"}})[
            "departments"] == {"from": "attribute", "field": "d"}


def test_job_level_and_family_codes_ride_in_the_profile() -> None:
    """Rules for job_level_code / job_family_code (LDAP, HRIS, mapped CSV) give the stable
    codes orgsync.catalogs renames entries by."""
    table = rules({"key": "k", "job_level": "lv", "job_level_code": "lc",
                   "job_family_code": "fc"}, "employee")
    mapped = map_record({"k": "E1", "lv": "P7 资深", "lc": " L7 ", "fc": "F1"}, table)
    assert employee_from(mapped.values, "E1").profile == {
        "job_level": "P7 资深", "job_level_code": "L7", "job_family_code": "F1"}


def test_custom_attribute_rules_fill_the_profile_by_name() -> None:
    """Rules custom_attrs.<name> (LDAP, HRIS, mapped CSV) give the custom attributes'
    values by attribute name, and make orgsync manage them."""
    table = rules({"key": "k", "custom_attrs.工位电话": "ext", "custom_attrs.主页": "home"},
                  "employee")
    mapped = map_record({"k": "E1", "ext": " 8012 ", "home": ""}, table)
    assert employee_from(mapped.values, "E1").profile == {"custom_attrs": {"工位电话": "8012"}}
    assert profile_fields(table) == {"custom_attrs"}
    assert profile_fields(rules({"key": "k"}, "employee")) == frozenset()
