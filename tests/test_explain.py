"""``orgsync explain KEY`` as the console script against the sandbox: a transferred person,
a frozen leaver, a held-back row, a pre-hire, a department, a Feishu-only account."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from orgsync.errors import EXIT_ERROR, EXIT_OK
from orgsync.model import Snapshot
from orgsync.sandbox import SandboxServer
from orgsync.synth import write_csv
from tests.test_cli_runs import ORG, _conf, history, orgsync
from tests.test_safety import leaves

__all__ = ["_conf"]  # the conf fixture

MOVED = sorted(leaves(ORG, 6))[0]
LEAVER = sorted(leaves(ORG, 6))[1]


def path(key: str) -> str:
    """A department's path of names, as explain shows it."""
    names: list[str] = []
    at: str | None = key
    while at is not None:
        names.append(ORG.departments[at].name)
        at = ORG.departments[at].parent_key
    return "/".join(reversed(names))


def explained(conf: Path, sb: SandboxServer, key: str, *args: str) -> dict[str, Any]:
    code, stdout, stderr = orgsync(conf, sb, "explain", key, "--format", "json", *args)
    assert code == EXIT_OK, stderr
    report: dict[str, Any] = json.loads(stdout)
    return report


def test_a_transferred_person_is_explained_by_the_journal(conf: Path,
                                                           sandbox: SandboxServer) -> None:
    """Moved to another department by a second sync: explain shows the source and applied
    records by name, and the move with its run id, outcome and reason; --live reads Feishu."""
    sb = sandbox
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    person = ORG.employees[MOVED]
    before = person.department_keys[0]
    after = next(d for d in sorted(ORG.departments) if d not in person.department_keys)
    write_csv(Snapshot(dict(ORG.departments),
                       {**ORG.employees, MOVED: replace(person, department_keys=(after,))}),
              conf.parent / "src")
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    second = history(conf, sb)[0]["run_id"]

    code, text, _ = orgsync(conf, sb, "explain", MOVED, "--live")
    assert code == EXIT_OK
    lines = text.splitlines()
    assert lines[0] == f"Person {MOVED} {person.name}"
    assert lines[1] == "State: managed, active: as the source says"
    assert f"  departments: {path(after)} ({after})" in lines
    move = next(line for line in lines if " user.move " in line)
    assert move.split()[2:6] == ["run", second, "user.move", "done"]
    assert move.endswith(f"moved departments; department_keys [{path(before)} ({before})] → "
                         f"[{path(after)} ({after})]")
    assert "Feishu now: as applied" in lines

    report = explained(conf, sb, person.email or "")
    assert report["operations"][0]["reason"] == (f"moved departments; department_keys "
                                                 f"[{before}] → [{after}]")
    assert (report["key"], report["asked"]) == (MOVED, person.email)
    assert report["applied"]["department_keys"] == [after]
    assert [(op["run_id"], op["kind"], op["status"]) for op in report["operations"]][:1] == [
        (second, "user.move", "done")]
    assert report["operations"][-1]["kind"] == "user.create"
    assert report["messages"] == []
    assert "live" not in report

    code, text, _ = orgsync(conf, sb, "explain", after)
    assert code == EXIT_OK
    assert text.splitlines()[:2] == [f"Department {after} {ORG.departments[after].name}",
                                     "State: managed: as the source says"]


def test_leavers_held_rows_prehires_and_feishu_only_accounts(conf: Path, sandbox: SandboxServer,
                                                             sandbox_api: httpx.Client) -> None:
    """A frozen leaver shows frozen since / delete due; a held row the reason; a pre-hire
    when the account comes; an account only Feishu has (found with --live) is not managed."""
    sb = sandbox
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    start = datetime.now(UTC).date() + timedelta(days=30)
    base = ORG.employees[MOVED]
    prehire = replace(base, key="E09001", email="later@example.com", mobile="+8613711110001",
                      join_date=start, employee_no=None)
    bad = replace(base, key="E09002", email="bad@example.com", mobile="+8613711110002",
                  employee_no=None, manager_key="E0nobody")
    people = {k: e for k, e in ORG.employees.items() if k != LEAVER}
    write_csv(Snapshot(dict(ORG.departments), {**people, "E09001": prehire, "E09002": bad}),
              conf.parent / "src")
    csv = conf.parent / "src" / "employees.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace("+8613711110002", "12345"),
                   encoding="utf-8")
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK

    leaver = explained(conf, sb, LEAVER)
    assert leaver["state"] == "managed, frozen: a leaver in the grace period"
    assert leaver["source"]["record"] is None
    frozen = datetime.fromisoformat(leaver["lifecycle"]["frozen_since"])
    assert datetime.fromisoformat(leaver["lifecycle"]["delete_due"]) == frozen + timedelta(
        days=14)
    assert leaver["operations"][0]["kind"] == "user.freeze"
    assert leaver["operations"][0]["reason"].startswith("absent from source")

    held = explained(conf, sb, "E09002")
    assert held["state"].startswith("held back: employees.csv:")
    assert "mobile" in held["state"]
    assert (held["applied"], held["operations"]) == (None, [])

    later = explained(conf, sb, "E09001")
    assert later["state"] == (f"not created yet: starts {start.isoformat()}, account created "
                              f"{(start - timedelta(days=7)).isoformat()}")

    ids = {"user_id_type": "user_id", "department_id_type": "department_id"}
    made = sandbox_api.post("/open-apis/contact/v3/users", params=ids, json={
        "user_id": "ext1", "name": "外包", "email": "ext@example.com",
        "mobile": "+8613711119999", "department_ids": ["0"], "employee_type": 4}).json()
    assert made["code"] == 0
    code, _, stderr = orgsync(conf, sb, "explain", "ext@example.com")
    assert code == EXIT_ERROR
    assert "'ext@example.com' is in neither the source, the ledger" in stderr
    outside = explained(conf, sb, "ext@example.com", "--live")
    assert outside["state"] == ("not managed: Feishu-only account (user_id ext1; no HR "
                                "record, never changed by orgsync)")
    assert outside["live"]["name"] == "外包"
