"""``orgsync apply --only KEY…`` as the console script against the sandbox."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from orgsync.config import load_config
from orgsync.errors import EXIT_ERROR, EXIT_OK
from orgsync.ledger import Ledger
from orgsync.model import Department, Snapshot
from orgsync.sandbox import SandboxServer
from orgsync.state import Lifecycle
from orgsync.synth import write_csv
from tests.sandbox_run import read_back
from tests.test_cli_runs import ORG, _conf, history, orgsync
from tests.test_safety import leaves

__all__ = ["_conf"]  # the conf fixture

LEAVER, CHANGED = sorted(leaves(ORG, 2))
KIND = re.compile(r"^([a-z_]+\.[a-z_]+) \(\d+\)$")
OP = re.compile(r"^    [-+~>!*] ([DE]\d{4,5}) ")


def shown(stdout: str) -> list[tuple[str, str]]:
    """The (kind, key) of each operation the text plan lists, in order."""
    kind, listed = "", []
    for line in stdout.splitlines():
        if m := KIND.match(line):
            kind = m.group(1)
        elif m := OP.match(line):
            listed.append((kind, m.group(1)))
    return listed


def test_only_a_new_hire_with_their_department_and_manager(conf: Path,
                                                            sandbox: SandboxServer) -> None:
    """A new hire in a new department under a new manager: --only syncs the three of them and
    nothing else (the leaver stays active, another's new title waits); the guards' baselines
    do not move; the full apply afterwards does the rest."""
    sb = sandbox
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    ledger = Ledger(f"sqlite:///{conf.parent / 'ledger.db'}")
    baseline = (ledger.get_meta("last_good_employees"), ledger.leaver_history(10))
    parent = sorted(ORG.departments)[0]
    base = ORG.employees[CHANGED]
    boss = replace(base, key="E09100", name="新经理", email="boss@example.com",
                   mobile="+8613711110100", department_keys=("D9100",), employee_no=None)
    new = replace(base, key="E09101", name="新同事", email="new@example.com",
                  mobile="+8613711110101", department_keys=("D9100",), manager_key="E09100",
                  employee_no=None)
    people = {k: e for k, e in ORG.employees.items() if k != LEAVER}
    people[CHANGED] = replace(base, job_title="Principal")
    write_csv(Snapshot({**ORG.departments, "D9100": Department(
        key="D9100", name="新部门", parent_key=parent, leader_key="E09100")},
        {**people, "E09100": boss, "E09101": new}), conf.parent / "src")

    code, stdout, stderr = orgsync(conf, sb, "apply", "--only", "new@example.com", "--yes")
    assert code == EXIT_OK, stderr
    # Their department, their manager's account and theirs (each manager link in the
    # create); not the leaver's freeze, not the other's title, not the department's
    # leader link.
    assert ("Only new@example.com and what they depend on: 3 of the "
            "6 planned operations.") in stdout
    assert shown(stdout) == [
        ("department.create", "D9100"), ("user.create", "E09100"),
        ("user.create", "E09101")]
    assert "Applied: 3 done, 0 failed, 0 skipped" in stdout
    feishu = read_back(load_config(conf, env={"CLI_TEST_SECRET": sb.config.app_secret}))
    made = feishu.users["E09101"].record
    assert (made.manager_key, made.department_keys) == ("E09100", ("D9100",))
    assert "E09100" in feishu.users
    assert feishu.users[LEAVER].lifecycle is Lifecycle.ACTIVE
    assert feishu.users[CHANGED].record.job_title == base.job_title
    assert (ledger.get_meta("last_good_employees"), ledger.leaver_history(10)) == baseline
    run = history(conf, sb)[0]
    assert (run["mode"], run["status"], "leavers" in run["summary"]) == ("apply-only", "ok",
                                                                          False)

    code, stdout, _ = orgsync(conf, sb, "apply", "--only", "E0nobody", "--yes")
    assert code == EXIT_ERROR

    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    feishu = read_back(load_config(conf, env={"CLI_TEST_SECRET": sb.config.app_secret}))
    assert feishu.users[LEAVER].lifecycle is Lifecycle.FROZEN
    assert feishu.users[CHANGED].record.job_title == "Principal"
    assert ledger.get_meta("last_good_employees") == str(len(people) + 2)
