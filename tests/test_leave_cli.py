"""The leave config (fails fast) and ``orgsync leave plan|apply`` / ``preview-source`` as
console-script processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import config_from_dict
from orgsync.errors import ConfigError
from orgsync.sandbox import SandboxServer

ORGSYNC = str(Path(sys.executable).parent / "orgsync")


def leave_config(**leave: Any) -> None:
    config_from_dict({"version": 1, "feishu": {"app_id": "cli_a", "app_secret": "s"},
                      "source": {"type": "csv"}, "leave": leave}, file="orgsync.yaml",
                     base_dir=Path("/tmp"))


@pytest.mark.parametrize(("leave", "key", "message", "remedy"), [
    ({"timezone": "Asia/Shangai"}, "leave.timezone", "unknown timezone 'Asia/Shangai'",
     "use an IANA name such as Asia/Shanghai or Europe/London"),
    ({"city_timezones": {"London": "GMT+1"}}, "leave.city_timezones.London",
     "unknown timezone 'GMT+1'", "use an IANA name such as Asia/Shanghai or Europe/London"),
    ({"title": "{kind} {days}"}, "leave.title", "unknown variable {days}",
     "use {employee_id}, {end}, {kind}, {name}, {start}"),
    ({"source": {"type": "csv"}}, "leave.source.file", "is required",
     "the path of the leave CSV, e.g. file: hr/leaves.csv (relative to the config file)"),
    ({"source": {"file": "l.csv", "columns": {"leave": "编号"}}}, "leave.source.columns.leave",
     "unknown leave column", "known: leave_id, employee_id, start, end, kind, status"),
    ({"lookahead": 30}, "leave.lookahead", "unknown key", "did you mean 'lookahead_days'?"),
])
def test_bad_leave_config_names_file_key_and_remedy(leave: dict[str, Any], key: str,
                                                    message: str, remedy: str) -> None:
    with pytest.raises(ConfigError) as caught:
        leave_config(**leave)
    assert str(caught.value) == f"orgsync.yaml: {key}: {message} ({remedy})"


def test_preview_source_and_leave_plan_as_processes(sandbox: SandboxServer,
                                                    tmp_path: Path) -> None:
    (tmp_path / "departments.csv").write_text("department_id,name,parent_id\nD1,研发部,\n",
                                              encoding="gb18030")
    (tmp_path / "employees.csv").write_text(
        "employee_id,name,email,mobile,department_ids\n"
        "E1,张伟,e1@example.com,+8613800000001,D1\n", encoding="gb18030")
    (tmp_path / "leaves.csv").write_text(
        "编号,工号,开始,结束,类型\nL1,E1,2099-01-01,2099-01-02,年假\nL2,E7,2099-01-01,2099-01-01,病假\n"
        "L3,E1,2099-01-02T14:00+08:00,2099-01-02T16:00,事假\n", encoding="gb18030")
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": sandbox.base_url, "app_id": sandbox.config.app_id,
                   "app_secret": "${TEST_SECRET}"},
        "source": {"type": "csv", "departments": "departments.csv",
                   "employees": "employees.csv", "encoding": "gb18030"},
        "ledger": {"url": "sqlite:///l.db"},
        "leave": {"source": {"type": "csv", "file": "leaves.csv", "encoding": "gb18030",
                             "columns": {"leave_id": "编号", "employee_id": "工号",
                                         "start": "开始", "end": "结束", "kind": "类型"}},
                  "lookahead_days": 366},
    }), encoding="utf-8")
    env = {**os.environ, "TEST_SECRET": sandbox.config.app_secret}

    def orgsync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ORGSYNC, *args, "-c", str(conf)], capture_output=True,
                              text=True, env=env, timeout=120, check=False)

    preview = orgsync("preview-source", "--format", "json")
    assert preview.returncode == 0, preview.stderr
    leave = json.loads(preview.stdout)["leave"]
    assert [(r["leave_id"], r["all_day"]) for r in leave["records"]] == [("L1", True),
                                                                         ("L2", True)]
    assert [(i["key"], i["reason"], i["held"]) for i in leave["issues"]] == [
        ("L3", "end '2099-01-02T16:00' has no UTC offset: add one, e.g. +08:00", True),
        ("L2", "unknown person E7 (not managed by orgsync)", True)]
    plan = orgsync("leave", "plan")
    assert plan.returncode == 0, plan.stderr
    # Nobody is managed yet (no directory run): every leave names an unknown person.
    assert plan.stdout.splitlines()[0] == "Leave plan: no changes"
    assert "leave L1: unknown person E1 (not managed by orgsync) (held)" in plan.stdout
