"""Plans a person can read: summary first, names not ids, reasons that are true, filters,
formats, and renderers that write operation by operation."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from orgsync.config import SafetyConfig
from orgsync.diff import DiffPolicy, diff
from orgsync.errors import ConfigError
from orgsync.model import EmployeeType, Snapshot, Status
from orgsync.plan import OpKind, Plan
from orgsync.plan_view import Filters
from orgsync.render import render
from orgsync.safety import gauges
from orgsync.source import Issue, SourceData
from tests.test_diff import dept, emp, state_of

BEFORE = Snapshot.of(
    [dept("D1", "研发中心"), dept("D2", "平台部", "D1"), dept("D3", "数据部", "D1"),
     dept("D4", "销售中心")],
    [emp("E1", ("D1",), name="张伟"), emp("E2", ("D2",), manager="E1"),
     emp("E3", ("D2",), manager="E1", employee_type=EmployeeType.INTERN),
     emp("E4", ("D4",)), emp("E5", ("D4",), manager="E4"), emp("E6", ("D4",), manager="E5")])


def week2() -> Snapshot:
    """E2 moves 平台部 → 数据部, E3 becomes regular, E5 leaves (E6's manager), E7 joins
    under 张伟, E8 starts in three weeks."""
    people = dict(BEFORE.employees)
    people["E2"] = replace(people["E2"], department_keys=("D3",))
    people["E3"] = replace(people["E3"], employee_type=EmployeeType.REGULAR)
    people["E5"] = replace(people["E5"], status=Status.TERMINATED)
    people["E6"] = replace(people["E6"], manager_key="E4")
    people["E7"] = emp("E7", ("D3",), manager="E1")
    people["E8"] = emp("E8", ("D2",), join_date=date(2026, 12, 24))
    return Snapshot(dict(BEFORE.departments), people)


NOW = datetime(2026, 12, 3, tzinfo=UTC)


def planned() -> Plan:
    held = Issue("employee", "E9", "mobile", "'123' is not a valid mobile", "error",
                 "employees.csv:10")
    source = SourceData(week2(), issues=[held], held_employees={"E9"})
    current = state_of(BEFORE)
    plan = diff(source, current, DiffPolicy(leaver_action="freeze", now=NOW))
    return replace(plan, guards=tuple(gauges(plan, current, SafetyConfig(min_managed=1))))


def text(plan: Plan, filters: Filters | None = None) -> str:
    buf = io.StringIO()
    render(plan, "text", buf, filters)
    return buf.getvalue()


def test_the_summary_comes_first_and_counts_what_json_counts() -> None:
    """Counts by kind, held records, warnings and every threshold with how close the plan
    is, before the first operation; the text's Held back (N) is JSON's held list."""
    plan = planned()
    lines = text(plan).splitlines()
    first_op = next(i for i, line in enumerate(lines) if line.startswith("user.create ("))
    head = [" ".join(line.split()) for line in lines[:first_op]]
    assert head[0] == f"Plan {plan.plan_id} — {len(plan.operations)} operations"
    assert "user.freeze 1" in head
    assert "Held back (1) — left as they are in Feishu:" in head
    assert "Warnings (1):" in head
    assert "! employee E8: join_date: starts 2026-12-24, account created 2026-12-17 (not created yet)" \
        in head
    assert ("ok user removals (deletes + freezes): 1 of at most 500 — "
            "safety.max_user_removals=500") in head
    assert ("ok user removals (deletes + freezes): 1 of at most 1 (20% of 6 managed) — "
            "safety.max_user_removal_fraction=20%") in head
    doc = json.loads(_json(plan))
    assert [h["key"] for h in doc["held"]] == ["E9"]
    assert [w["key"] for w in doc["warnings"]] == ["E8"]
    assert doc["summary"] == plan.summary()
    assert len(doc["operations"]) == len(plan.operations)
    assert {t["setting"] for t in doc["thresholds"]} >= {"safety.max_user_removals=500"}


def test_names_not_ids() -> None:
    """Department paths, managers by name and key, employee types by name; JSON keeps both."""
    out = text(planned())
    assert "    > E2 Person E2  (moved departments)\n" \
           "        departments: 研发中心/平台部 → 研发中心/数据部\n" in out
    assert "employee_type: intern → regular" in out
    assert "manager: 张伟 (E1)" in out
    doc = json.loads(_json(planned()))
    move = next(op for op in doc["operations"] if op["kind"] == "user.move")
    assert move["changes"] == [{"field": "department_keys", "old": ["D2"], "new": ["D3"],
                                "old_text": "研发中心/平台部", "new_text": "研发中心/数据部"}]
    assert move["department"] == {"key": "D3", "path": "研发中心/数据部"}
    assert move["name"] == "Person E2"


def test_reasons_that_are_true() -> None:
    """A new hire's manager link rides in the create; a report whose manager left says that."""
    ops = {(op.kind, op.key): op for op in planned().operations}
    assert ops[(OpKind.USER_CREATE, "E7")].reason == "new in source"
    assert "leader_user_id" in ops[(OpKind.USER_CREATE, "E7")].payload
    assert (OpKind.USER_SET_MANAGER, "E7") not in ops
    assert ops[(OpKind.USER_SET_MANAGER, "E6")].reason == "manager Person E5 (E5) left"


def test_drift_repaired_says_changed_in_feishu_with_the_value_found() -> None:
    """On a full read, a field the source did not change but Feishu holds otherwise is
    drift: the reason says so and names what Feishu holds."""
    applied = state_of(BEFORE)
    live = state_of(BEFORE)
    e4 = live.users["E4"]
    live.users["E4"] = replace(e4, record=replace(e4.record, job_title="CEO",
                                                  email="boss@elsewhere.example"))
    e5 = live.users["E5"]
    live.users["E5"] = replace(e5, record=replace(e5.record, manager_key="E1"))
    plan = diff(SourceData(BEFORE), live, DiffPolicy(applied=applied))
    ops = {(op.kind, op.key): op for op in plan.operations}
    # An email or mobile is named, not quoted: the change line shows it.
    assert ops[(OpKind.USER_UPDATE, "E4")].reason == \
        "changed in Feishu (found there: email, job_title CEO)"
    assert ops[(OpKind.USER_SET_MANAGER, "E5")].reason == \
        "changed in Feishu (found there: manager 张伟 (E1))"
    # The same difference on an incremental run is the source's.
    plan = diff(SourceData(BEFORE), live)
    assert {op.reason for op in plan.operations} == {"changed in source",
                                                     "manager changed in source"}


def test_filters_list_only_what_they_name_and_the_summary_counts_all() -> None:
    """--kind, --department (its subtree, by key or path) and --key narrow the operations
    listed; the summary still counts the whole plan."""
    plan = planned()
    moves = text(plan, Filters(kinds=frozenset({"user.move"})))
    assert f"Showing 1 of {len(plan.operations)} operations (--kind user.move)" in moves
    assert "E2 Person E2" in moves
    assert "E7 Person E7" not in moves
    assert "user.create 1" in " ".join(moves.split())  # the summary is whole
    sales = text(plan, Filters(department="销售中心"))
    listed = {line.split()[1] for line in sales.splitlines() if line.startswith("    ")
              and line.split()[0] in "+~>!-"}
    assert listed == {"E5", "E6"}
    assert "Showing 3 of 5 operations" in text(plan, Filters(department="D1"))  # and below
    keyed = text(plan, Filters(keys=frozenset({"E7"})))
    assert "Showing 1 of" in keyed  # E7's create, with the manager link
    summary = text(plan, Filters(summary=True))
    assert "E2 Person E2" not in summary
    assert summary.splitlines()[-1].startswith("Summary: ")
    with pytest.raises(ConfigError, match="--department: no department 'nowhere'"):
        text(plan, Filters(department="nowhere"))
    with pytest.raises(ConfigError, match=r"--kind: unknown operation kind user\.teleport"):
        text(plan, Filters(kinds=frozenset({"user.teleport"})))


def test_an_unknown_format_is_an_error() -> None:
    with pytest.raises(ConfigError, match="--format: unknown format 'yaml' "
                                          r"\(use text, json, markdown, html\)"):
        render(planned(), "yaml", io.StringIO())


class _Counting(io.StringIO):
    largest = 0

    def write(self, s: str) -> int:
        self.largest = max(self.largest, len(s))
        return super().write(s)


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
def test_renderers_write_as_they_go(fmt: str) -> None:
    """Each format writes as it goes (at most a few thousand lines at a time), never one
    document built in memory first."""
    org = Snapshot.of([dept("D1", "研发中心")], [emp(f"E{i}", ("D1",)) for i in range(5000)])
    plan = diff(SourceData(org), state_of(Snapshot.of([dept("D1", "研发中心")], [])))
    out = _Counting()
    render(plan, fmt, out)
    assert out.getvalue().count("E4999") >= 1
    assert out.largest < len(out.getvalue()) / 2


def _json(plan: Plan) -> str:
    buf = io.StringIO()
    render(plan, "json", buf)
    return buf.getvalue()


def test_progress_knows_the_rate_limited_lane() -> None:
    """The bar's ETA counts moves at Feishu's 1/s whatever else went fast, it says when
    only rate-limited work is left, and an interrupted apply says how far it got."""
    from rich.console import Console

    from orgsync.executor import OpResult
    from orgsync.render import ProgressBar

    org = Snapshot.of([dept("D1", "研发中心"), dept("D2", "数据部")],
                      [emp(f"E{i}", ("D1",)) for i in range(5)])
    moved = Snapshot(dict(org.departments), {
        **org.employees, **{f"E{i}": replace(org.employees[f"E{i}"], department_keys=("D2",))
                            for i in range(3)},
        "E8": emp("E8", ("D1",)), "E9": emp("E9", ("D1",))})
    plan = diff(SourceData(moved), state_of(org))
    assert plan.summary() == {"user.create": 2, "user.move": 3}
    bar = ProgressBar(Console(file=io.StringIO()))
    bar.start(plan)
    by_kind = sorted(plan.operations, key=lambda op: op.kind != OpKind.USER_CREATE)
    bar.advance(OpResult(by_kind[0], "done"))
    assert bar.waiting() == ""
    bar.advance(OpResult(by_kind[1], "done"))
    assert bar.waiting() == "moves: 1/s Feishu limit"
    assert bar.eta() == "ETA 0m03s"
    bar.advance(OpResult(by_kind[2], "failed"))
    assert bar.eta() == "ETA 0m02s"
    assert bar.interrupted() == "interrupted: 2 of 5 done; run again to finish"
    assert ProgressBar(Console(file=io.StringIO()), scale=10.0).waiting() == ""


def test_progress_never_promises_more_than_the_documented_limits_allow() -> None:
    """A first sync's 3,000 creates: before the first one and after a fast first minute
    (1,000 done in 20 s at 50/s), the ETA is what 1000/min leaves, not the pace so far."""
    from rich.console import Console

    from orgsync.executor import OpResult
    from orgsync.render import ProgressBar

    org = Snapshot.of([dept("D1", "研发中心")], [emp(f"E{i:04}", ("D1",)) for i in range(3000)])
    plan = diff(SourceData(org), state_of(Snapshot.of([dept("D1", "研发中心")], [])))
    assert plan.summary() == {"user.create": 3000}
    bar = ProgressBar(Console(file=io.StringIO()))
    bar.start(plan)
    assert bar.eta() == "ETA 3m00s"
    bar._started -= 20.0  # as if the first minute's burst took 20 s
    for op in plan.operations[:1000]:
        bar.advance(OpResult(op, "done"))
    assert bar.eta() == "ETA 2m00s"  # the pace so far would say 40 s
    assert ProgressBar(Console(file=io.StringIO()), scale=10.0).eta() == "ETA 0m00s"
    ten = ProgressBar(Console(file=io.StringIO()), scale=10.0)
    ten.start(plan)
    assert ten.eta() == "ETA 0m18s"  # 10,000/min


def test_annotating_a_plan_keeps_its_checksum_computed_once() -> None:
    """The summary's guards (and a takeover's summary) are set on a copy that carries the
    checksum along: a 200k-operation plan is hashed once per run, not once per copy."""
    plan = planned()
    checksum = plan.checksum
    copy = plan.annotated(guards=())
    assert copy.__dict__["checksum"] == checksum
    assert copy == plan
    with pytest.raises(ValueError, match="not display fields"):
        plan.annotated(notes=("x",))
