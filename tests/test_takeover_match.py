"""The takeover's matching rules (pure: no Feishu)."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from orgsync.model import Department, Employee, Snapshot
from orgsync.source import SourceData
from orgsync.state import DirectoryState, MirrorDepartment, MirrorUser
from orgsync.takeover import match, normalized


def _d(key: str, name: str, parent: str | None = None) -> Department:
    return Department(key=key, name=name, parent_key=parent)


def source(depts: Sequence[Department], people: Sequence[Employee] = ()) -> SourceData:
    return SourceData(Snapshot({d.key: d for d in depts}, {e.key: e for e in people}))


def tenant(depts: Sequence[Department], people: Sequence[Employee] = (),
           admins: AbstractSet[str] = frozenset()) -> DirectoryState:
    """Feishu as read with no reverse maps: keys are Feishu's custom ids."""
    return DirectoryState({d.key: MirrorDepartment(d, d.key) for d in depts},
                          {e.key: MirrorUser(e, e.key) for e in people}, set(admins))


def test_names_compare_after_nfkc_without_whitespace_or_case() -> None:
    assert normalized("研发 部") == normalized("研发\u3000部") == normalized("研发部")
    assert normalized("ＩＴ Ops") == normalized("itops")
    assert normalized("研发部") != normalized("研发一部")


def test_departments_match_by_code_then_exact_path_then_loose_path() -> None:
    hr = source([_d("D1", "总部"), _d("D2", "研发部", "D1"),
                 _d("D3", "销售部", "D1"), _d("D4", "前端组", "D2"),
                 _d("D5", "新部门", "D1"), _d("D6", "子部门", "D5")])
    fs = tenant([_d("x1", "总部"), _d("D3", "别的名字", "x1"),
                 _d("x2", "研发 部", "x1"), _d("x4", "前端组", "x2"),
                 _d("x6", "子部门", "x1")])
    found = match(hr, fs)
    assert found.departments == {"D1": "x1", "D2": "x2", "D3": "D3", "D4": "x4"}
    assert found.rules == {"department:D1": "path", "department:D2": "normalised path",
                           "department:D3": "id", "department:D4": "path"}
    assert found.conflicts == []  # D5 is created, so nothing under it can match (D6 neither)


def test_an_exact_name_wins_over_look_alikes_and_several_look_alikes_are_held() -> None:
    hr = source([_d("D1", "研发部"), _d("D2", "销售部")])
    fs = tenant([_d("a", "研发部"), _d("b", "研发 部"),
                 _d("c", "销 售部"), _d("d", "销售\u3000部")])
    found = match(hr, fs)
    assert found.departments == {"D1": "a"}
    [held] = found.conflicts
    assert (held.entity, held.key, held.severity) == ("department", "D2", "error")
    assert "'销 售部' (c)" in held.reason
    assert "'销售\\u3000部' (d)" in held.reason  # an invisible difference shown


def test_departments_orgsync_manages_are_not_matched_again() -> None:
    hr = source([_d("D1", "总部"), _d("D2", "研发部", "D1")])
    fs = tenant([_d("D1", "总部"), _d("y", "研发部", "D1")])
    found = match(hr, fs, managed={"D1": "D1"})
    assert found.departments == {"D2": "y"}
    assert found.users == {}


def _e(key: str, email: str | None = None, mobile: str | None = None) -> Employee:
    return Employee(key=key, name=key, department_keys=("D1",), email=email, mobile=mobile)


def test_people_match_by_id_then_email_then_mobile_and_the_rest_is_feishu_only() -> None:
    hr = source([_d("D1", "总部")],
                [_e("E1", "e1@x.cn"), _e("E2", "E2@X.CN"), _e("E3", None, "+86 138 0000 0003"),
                 _e("E4", "e4@x.cn")])
    fs = tenant([], [_e("E1", "other@x.cn"), _e("u2", "e2@x.cn"),
                     _e("u3", None, "+8613800000003"), _e("bot", "bot@x.cn")])
    found = match(hr, fs)
    assert found.users == {"E1": "E1", "E2": "u2", "E3": "u3"}
    assert [found.rules[f"user:{k}"] for k in ("E1", "E2", "E3")] == ["id", "email", "mobile"]
    assert found.feishu_only == [("bot", "bot")]
    assert found.summary(hr)["users"] == {"matched": {"email": 1, "id": 1, "mobile": 1},
                                          "to_create": 1, "ambiguous": []}


def test_ambiguous_people_are_held_never_guessed() -> None:
    hr = source([_d("D1", "总部")],
                [_e("E1", "e1@x.cn", "+8613800000001"), _e("E2", "shared@x.cn"),
                 _e("E3", None, "+8613800000009"), _e("E4", "boss@x.cn")])
    fs = tenant([], [_e("a", "e1@x.cn"), _e("b", None, "+8613800000001"),
                     _e("s", "shared@x.cn", "+8613800000009"), _e("root", "boss@x.cn")],
                admins={"root"})
    found = match(hr, fs)
    assert found.users == {}
    reasons = {i.key: i.reason for i in found.conflicts}
    assert reasons["E1"] == "email and mobile match two different Feishu users (a, b)"
    assert reasons["E2"].startswith("matches Feishu user s, as do E3;")
    assert reasons["E3"].startswith("matches Feishu user s, as do E2;")
    assert reasons["E4"] == ("matches Feishu user root, a tenant admin; tenant admins are "
                             "never adopted")
