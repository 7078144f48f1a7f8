"""``orgsync doctor`` against the sandbox over a real socket: healthy, then each knob turned
so that each check fails with its finding and remedy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.config import load_config
from orgsync.sandbox import SandboxServer
from orgsync.sandbox.introspection import KNOWN_SCOPES
from orgsync.synth import generate_org, write_csv
from tests.pg import free_port
from tests.sandbox_run import with_client

ORG = generate_org(employees=20, departments=5, levels=3)


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=10.0)
    return sandbox


def _conf(tmp_path: Path, sb: SandboxServer, *, secret: str | None = None,
          base_url: str | None = None, **sections: Any) -> Path:
    write_csv(ORG, tmp_path / "src")
    path = tmp_path / "orgsync.yaml"
    path.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": base_url or sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": secret or sb.config.app_secret, "rate_scale": 10.0,
                   "max_retries": 1, "timeout": 2},
        "source": {"type": "csv", "departments": "src/departments.csv",
                   "employees": "src/employees.csv"},
        "ledger": {"url": "sqlite:///ledger.db"},
        **sections,
    }), encoding="utf-8")
    return path


def doctor(conf: Path) -> tuple[int, dict[str, dict[str, str]]]:
    """Exit code and the checks by name (``--format json``)."""
    result = CliRunner().invoke(app, ["doctor", "-c", str(conf), "--format", "json"])
    doc = json.loads(result.stdout)
    assert doc["ok"] is (result.exit_code == 0)
    return result.exit_code, {c["name"]: c for c in doc["checks"]}


def statuses(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


@pytest.fixture(name="applied")
def _applied(sb: SandboxServer, tmp_path: Path) -> Path:
    """A config whose org was applied (so there is someone to read back)."""
    conf = _conf(tmp_path, sb)
    assert CliRunner().invoke(app, ["apply", "--yes", "-c", str(conf)]).exit_code == 0
    return conf


def test_a_healthy_setup_passes_every_check(applied: Path) -> None:
    code, checks = doctor(applied)
    assert code == 0
    assert statuses(checks) == {
        "reachable": "pass", "credentials": "pass", "ledger": "pass", "source": "pass",
        "permissions": "pass", "contact_scope": "pass", "fields": "pass",
        "admin_chat": "skip", "clock": "pass", "people_lock": "pass"}
    assert checks["contact_scope"]["detail"] == "the app's contact range is all members"
    assert checks["source"]["detail"].startswith("5 departments, 20 employees (20 active)")


def test_wrong_secret_fails_credentials_with_the_remedy(sb: SandboxServer,
                                                        tmp_path: Path) -> None:
    code, checks = doctor(_conf(tmp_path, sb, secret="wrong"))
    assert code == 1
    assert checks["reachable"]["status"] == "pass"
    assert checks["credentials"]["status"] == "fail"
    assert checks["credentials"]["detail"].startswith(
        "Feishu refuses the app secret (10015 wrong app secret)")
    assert "feishu.app_secret" in checks["credentials"]["remedy"]
    assert {checks[n]["status"] for n in ("permissions", "contact_scope", "fields",
                                          "admin_chat", "clock")} == {"skip"}


def test_unreachable_base_url_fails_reachable_naming_the_step(sb: SandboxServer,
                                                             tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, checks = doctor(_conf(tmp_path, sb, base_url=url))
    assert code == 1
    assert checks["reachable"]["status"] == "fail"
    assert checks["reachable"]["detail"].startswith(
        f"Feishu at {url} cannot be reached: connection failed (ConnectError")
    assert "feishu.base_url" in checks["reachable"]["remedy"]
    assert "credentials" not in checks


def test_a_partial_contact_scope_names_the_departments_outside_it(
        sb: SandboxServer, applied: Path) -> None:
    inside = sorted(ORG.departments)[1]
    sb.configure(contact_scope=[inside])
    code, checks = doctor(applied)
    assert code == 1
    scope = checks["contact_scope"]
    assert scope["status"] == "fail"
    subtree = {inside} | {k for k, d in ORG.departments.items() if d.parent_key == inside}
    outside = sorted(set(ORG.departments) - subtree)
    assert f"the contact range is some departments ({inside}); {len(outside)} of the 5 " \
           "departments orgsync manages lie outside it: " + ", ".join(outside) in scope["detail"]
    assert "all members" in scope["remedy"]


def test_a_scope_that_holds_every_managed_department_passes(
        sb: SandboxServer, applied: Path) -> None:
    tops = sorted(k for k, d in ORG.departments.items() if d.parent_key is None)
    sb.configure(contact_scope=tops)
    code, checks = doctor(applied)
    assert (code, checks["contact_scope"]["status"]) == (0, "pass")


def test_a_missing_read_permission_fails_naming_the_scope_and_fields(
        sb: SandboxServer, applied: Path) -> None:
    sb.configure(permissions=[s for s in KNOWN_SCOPES if s not in (
        "contact:user.email:readonly", "contact:contact:update_user_id")])
    code, checks = doctor(applied)
    assert code == 1
    assert checks["permissions"] == {
        "name": "permissions", "status": "fail",
        "detail": "not granted: contact:user.email:readonly (user email)",
        "remedy": "add these scopes in the developer console (Permissions & Scopes), "
                  "publish a new app version and have an admin approve it"}


def test_a_user_read_back_without_a_field_fails_the_fields_check(
        sb: SandboxServer, applied: Path) -> None:
    """The sandbox leaves out what the app may not read (§1.1): the read-back names it."""
    sb.configure(permissions=[s for s in KNOWN_SCOPES if s != "contact:user.email:readonly"])
    code, checks = doctor(applied)
    assert code == 1
    fields = checks["fields"]
    assert fields["status"] == "fail"
    assert fields["detail"].endswith(" came back without email: check and resync cannot "
                                     "compare them")
    assert fields["remedy"] == "grant the read scopes: email: contact:user.email:readonly"


def test_an_unreachable_admin_chat_fails(sb: SandboxServer, tmp_path: Path) -> None:
    code, checks = doctor(_conf(tmp_path, sb, notify={"admin_chat_id": "oc_nobody"}))
    assert code == 1
    assert checks["admin_chat"]["status"] == "fail"
    assert checks["admin_chat"]["detail"].startswith("the bot cannot reach chat oc_nobody "
                                                     "(Feishu 232006")


def test_an_unwritable_ledger_fails(sb: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    conf = _conf(tmp_path, sb, ledger={"url": f"sqlite:///{tmp_path}/file/ledger.db"})
    code, checks = doctor(conf)
    assert code == 1
    assert checks["ledger"]["status"] == "fail"
    assert "cannot" in checks["ledger"]["detail"]
    assert checks["reachable"]["status"] == "pass"  # the other checks still ran


def test_a_missing_source_fails(sb: SandboxServer, tmp_path: Path) -> None:
    conf = _conf(tmp_path, sb)
    (tmp_path / "src" / "employees.csv").unlink()
    code, checks = doctor(conf)
    assert code == 1
    assert checks["source"]["status"] == "fail"
    assert "employees.csv" in checks["source"]["detail"]


def test_clock_skew_against_feishus_date_header_fails(sb: SandboxServer,
                                                      applied: Path) -> None:
    sb.advance_clock(600)
    code, checks = doctor(applied)
    assert code == 1
    assert checks["clock"]["status"] == "fail"
    found = re.fullmatch(r"this machine is (\d+) s behind Feishu", checks["clock"]["detail"])
    assert found is not None
    assert 590 <= int(found[1]) <= 610


def test_a_reachable_admin_chat_passes(sb: SandboxServer, tmp_path: Path) -> None:
    probe = _conf(tmp_path, sb)
    chat = with_client(load_config(probe), lambda c: c.create_chat({"name": "orgsync-admins"}))
    code, checks = doctor(_conf(tmp_path, sb, notify={"admin_chat_id": chat["chat_id"]}))
    assert checks["admin_chat"] == {"name": "admin_chat", "status": "pass",
                                    "detail": f"the bot can reach chat {chat['chat_id']}",
                                    "remedy": ""}
    assert code == 0


def test_records_feishu_people_owns_are_listed(sb: SandboxServer, applied: Path) -> None:
    """A write Feishu refused as Feishu People's (44053, §1.15) is listed with its remedy."""
    employees = applied.parent / "src" / "employees.csv"
    rows = employees.read_text(encoding="utf-8").splitlines()
    key = rows[1].split(",", 1)[0]
    rows[1] = rows[1].replace(rows[1].split(",")[8], "改了的职位")  # job_title
    employees.write_text("\n".join(rows) + "\n", encoding="utf-8")
    sb.configure(people_sourced=[key])
    CliRunner().invoke(app, ["apply", "--yes", "-c", str(applied)])
    code, checks = doctor(applied)
    assert code == 0  # a warning, not a failure
    assert checks["people_lock"]["status"] == "warn"
    assert checks["people_lock"]["detail"] == (
        f"1 record(s) Feishu People owns are left as they are: user {key}")


def _leave_conf(tmp_path: Path, sb: SandboxServer) -> Path:
    (tmp_path / "leaves.csv").write_text("leave_id,employee_id,start,end\n", encoding="utf-8")
    return _conf(tmp_path, sb, leave={"source": {"type": "csv", "file": "leaves.csv"}})


def test_leave_without_the_time_off_scope_fails_naming_it(sb: SandboxServer,
                                                         tmp_path: Path) -> None:
    sb.configure(permissions=[s for s in KNOWN_SCOPES if s != "calendar:timeoff"])
    code, checks = doctor(_leave_conf(tmp_path, sb))
    assert code == 1
    assert checks["permissions"]["detail"] == (
        "not granted: calendar:timeoff or calendar:time_off:create + calendar:time_off:delete"
        " (leave: time-off events)")
    assert checks["leave_bot"]["status"] == "fail"
    assert checks["leave_bot"]["detail"].startswith("Feishu refused the time-off probe (99991672")


def test_leave_without_the_bot_capability_fails_with_the_remedy(sb: SandboxServer,
                                                                tmp_path: Path) -> None:
    sb.configure(bot_enabled=False)
    code, checks = doctor(_leave_conf(tmp_path, sb))
    assert code == 1
    assert statuses(checks)["permissions"] == "pass"
    assert checks["leave_bot"]["status"] == "fail"
    assert checks["leave_bot"]["detail"].startswith("the app has no bot: Feishu refuses "
                                                    "time-off events (190007")
    assert checks["leave_bot"]["remedy"].startswith("enable the bot capability")


def test_leave_with_scope_and_bot_passes_and_creates_no_event(sb: SandboxServer,
                                                             tmp_path: Path) -> None:
    _, checks = doctor(_leave_conf(tmp_path, sb))
    assert checks["leave_bot"] == {"name": "leave_bot", "status": "pass",
                                   "detail": "the app's bot may create time-off events",
                                   "remedy": ""}
    assert sb.tenant.timeoff_events == {}
