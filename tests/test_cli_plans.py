"""Plans through the console script as a process: formats, filters, the HTML report in a
real browser, ``apply`` on a pseudo-terminal (summary, pager offer), Ctrl-C mid-apply."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from orgsync.errors import EXIT_CONFIG, EXIT_ERROR, EXIT_HELD, EXIT_OK
from orgsync.ledger import Ledger
from orgsync.model import Snapshot, Status
from orgsync.sandbox import SandboxServer
from orgsync.synth import write_csv
from tests.browser import chromium
from tests.daemon_proc import wait_for
from tests.test_cli import ORG

ORGSYNC = str(Path(sys.executable).parent / "orgsync")  # the console script
OP_LINE = re.compile(r"^    [-+~>!*] [DE]\d{4,5} ", re.MULTILINE)


@pytest.fixture(name="conf")
def _conf(sandbox: SandboxServer, tmp_path: Path) -> Path:
    return _config(sandbox, tmp_path)


def _config(sandbox: SandboxServer, tmp_path: Path, **extra: Any) -> Path:
    """ORG as CSV in ``tmp_path`` and a config for it against ``sandbox`` (at rate_scale
    10), with ``extra`` top-level sections."""
    sandbox.configure(rate_scale=10.0)
    write_csv(ORG, tmp_path / "src")
    path = tmp_path / "orgsync.yaml"
    path.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": sandbox.base_url, "app_id": sandbox.config.app_id,
                   "app_secret": "${CLI_TEST_SECRET}", "rate_scale": 10.0},
        "source": {"type": "csv", "departments": "src/departments.csv",
                   "employees": "src/employees.csv"},
        "ledger": {"url": "sqlite:///ledger.db"},
        "logging": {"level": "warning"},
        **extra,
    }), encoding="utf-8")
    return path


def env_for(sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PAGER")}
    return {**env, "CLI_TEST_SECRET": sandbox.config.app_secret, **extra}


def orgsync(conf: Path, sandbox: SandboxServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ORGSYNC, *args, "-c", str(conf)], capture_output=True, text=True,
                          env=env_for(sandbox), timeout=180, check=False)


def test_an_unknown_format_is_a_config_error(conf: Path, sandbox: SandboxServer) -> None:
    """-f yaml exits 3 naming the flag and the formats, and prints no plan."""
    done = orgsync(conf, sandbox, "plan", "-f", "yaml")
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.strip() == ("error: --format: unknown format 'yaml' "
                                   "(use text, json, markdown, html)")
    assert done.stdout == ""
    done = orgsync(conf, sandbox, "plan", "--kind", "user.teleport")
    assert done.returncode == EXIT_CONFIG
    assert "--kind: unknown operation kind user.teleport (one of department.adopt" in done.stderr


def test_summary_and_filters(conf: Path, sandbox: SandboxServer) -> None:
    """--summary prints no operation; --kind, --key and --department narrow the list."""
    done = orgsync(conf, sandbox, "plan", "--summary")
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.splitlines()[0].startswith("Plan ")
    assert "Safety thresholds" in done.stdout
    assert not OP_LINE.search(done.stdout)
    done = orgsync(conf, sandbox, "plan", "--kind", "user.create", "--key", "E00003",
                   "--key", "E00004")
    assert OP_LINE.findall(done.stdout) == ["    + E00003 ", "    + E00004 "]
    assert "Showing 2 of " in done.stdout
    done = orgsync(conf, sandbox, "plan", "--kind", "department.create", "--department", "研发中心")
    listed = sorted(m.split()[1] for m in OP_LINE.findall(done.stdout))
    assert listed == ["D0001", "D0003", "D0004"]  # 研发中心 and its subtree


ORM = ("sqlmodel", "sqlalchemy.orm", "orgsync.tables")


def test_a_plan_process_never_loads_the_orm(sandbox: SandboxServer, tmp_path: Path) -> None:
    """``orgsync plan`` (with groups, a change, then a held plan) imports neither SQLModel,
    ``sqlalchemy.orm`` nor the table classes; the runs and the held plan it records read
    back through the ORM as before."""
    conf = _config(sandbox, tmp_path, safety={"max_user_removals": 0},
                   groups={"define": {"bj": {"name": "北京", "members": {"city": "北京"}}}})
    assert orgsync(conf, sandbox, "apply", "--yes").returncode == EXIT_OK

    def plan() -> tuple[int, str, list[str]]:
        done = subprocess.run([sys.executable, "-X", "importtime", ORGSYNC, "plan", "-c",
                               str(conf)], capture_output=True, text=True,
                              env=env_for(sandbox), timeout=180, check=False)
        imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                    if line.startswith("import time:")]
        assert "orgsync.runner" in imported, done.stderr[-2000:]
        return done.returncode, done.stdout, [m for m in imported if m.startswith(ORM)]

    people = list(ORG.employees.values())
    mover = next(e for e in people if e.city != "北京")
    leaver = next(e for e in people if e.city == "北京" and e.manager_key)
    moved = [replace(e, city="北京") if e is mover else e for e in people]
    write_csv(Snapshot.of(ORG.departments.values(), moved), tmp_path / "src")
    code, out, orm = plan()
    assert (code, orm) == (EXIT_OK, []), out
    assert f"(adds 1 of 1 (12 now): {mover.name})" in out  # the group gains the mover
    write_csv(Snapshot.of(ORG.departments.values(), [
        replace(e, status=Status.TERMINATED) if e is leaver else e for e in moved]),
        tmp_path / "src")
    code, out, orm = plan()
    assert (code, orm) == (EXIT_HELD, [])
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        runs = ledger.runs(limit=3)
        assert [(r.mode, r.status) for r in runs] == [("plan", "held"), ("plan", "ok"),
                                                       ("apply", "ok")]
        assert all(r.finished_at is not None and r.finished_at >= r.started_at for r in runs)
        held = ledger.held_plans()
        assert [h.plan_id for h in held] == [runs[0].plan_id]
        assert held[0].plan_id in out
        assert ledger.plan_status(held[0].plan_id) == "held"
    finally:
        ledger.close()


def test_html_report_opens_in_a_browser_and_filters(conf: Path, sandbox: SandboxServer,
                                                    tmp_path: Path) -> None:
    """plan -f html is one file with nothing external; in Chromium its summary shows the
    plan's counts and choosing a kind hides every other row."""
    summary = json.loads(orgsync(conf, sandbox, "plan", "-f", "json").stdout)["summary"]
    done = orgsync(conf, sandbox, "plan", "-f", "html")
    assert done.returncode == EXIT_OK, done.stderr
    report = tmp_path / "plan.html"
    report.write_text(done.stdout, encoding="utf-8")
    assert not re.search(r"\b(src|href)=|@import|url\(", done.stdout)
    with chromium() as page:
        page.open(report)
        shown = page.eval("Object.fromEntries([...document.querySelectorAll("
                          "'#summary tr[data-kind]')].map(r => [r.dataset.kind, "
                          "+r.querySelector('.count').textContent]))")
        assert shown == summary
        visible = "[...document.querySelectorAll('tr.op')].filter(r => !r.hidden)"
        assert page.eval(f"{visible}.length") == sum(summary.values())
        page.eval("(() => { const s = document.getElementById('f-kind'); "
                  "s.value = 'department.create'; s.dispatchEvent(new Event('change')); })()")
        assert page.eval(f"{visible}.map(r => r.dataset.kind)") == \
            ["department.create"] * summary["department.create"]
        assert page.eval("document.getElementById('shown').textContent") == \
            str(summary["department.create"])
        page.eval("(() => { const s = document.getElementById('f-kind'); s.value = ''; "
                  "const d = document.getElementById('f-department'); d.value = '研发中心'; "
                  "d.dispatchEvent(new Event('input')); })()")
        keys = page.eval(f"{visible}.filter(r => r.dataset.kind === 'department.create')"
                         ".map(r => r.dataset.key)")
        assert sorted(keys) == ["D0001", "D0003", "D0004"]


def _read_until(fd: int, wanted: str, seen: list[str], timeout: float = 60) -> str:
    """Read the terminal until ``wanted`` appears (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while wanted not in "".join(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} on the terminal; got: {''.join(seen)[-2000:]}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the process closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed before {wanted!r}: {''.join(seen)[-2000:]}"
            seen.append(chunk.decode("utf-8", "replace"))
    return "".join(seen)


def test_apply_on_a_terminal_shows_the_summary_and_offers_the_pager(
        conf: Path, sandbox: SandboxServer) -> None:
    """On a pseudo-terminal: the summary, no operation until the pager is asked for; the
    operations go through $PAGER; declining the apply applies nothing. Off a terminal
    the whole plan is printed."""
    main, sub = pty.openpty()
    proc = subprocess.Popen([ORGSYNC, "apply", "-c", str(conf)], stdin=sub, stdout=sub,
                            stderr=sub, env=env_for(sandbox, PAGER="cat", COLUMNS="200"),
                            close_fds=True)
    os.close(sub)
    seen: list[str] = []
    try:
        before = _read_until(main, "Page through the operations (cat)?", seen)
        assert "Summary: department.create=6" in before
        assert "Safety thresholds" in before
        assert not OP_LINE.search(before.replace("\r\n", "\n"))
        os.write(main, b"y\n")
        after = _read_until(main, "Apply ", seen)[len(before):]
        assert len(OP_LINE.findall(after.replace("\r\n", "\n"))) == sum(
            json.loads(orgsync(conf, sandbox, "plan", "-f", "json").stdout)["summary"].values())
        os.write(main, b"n\n")
        _read_until(main, "Nothing applied.", seen)
        assert proc.wait(timeout=60) == EXIT_ERROR
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    assert not sandbox.tenant.users
    done = orgsync(conf, sandbox, "apply")  # no terminal: the whole plan, then the refusal
    assert done.returncode == EXIT_ERROR
    assert OP_LINE.search(done.stdout)
    assert "refusing to apply without --yes" in done.stderr


def test_ctrl_c_during_apply_says_how_far_it_got(conf: Path, sandbox: SandboxServer) -> None:
    """SIGINT mid-apply: 'interrupted: N of M done; run again to finish' (exit 130);
    running again finishes with nothing twice."""
    sandbox.configure(latency_ms=150.0)
    conf.write_text(conf.read_text().replace('"logging"',
                                             '"sync": {"concurrency": 2}, "logging"'))
    plan = json.loads(orgsync(conf, sandbox, "plan", "-f", "json").stdout)
    total = sum(plan["summary"].values())
    proc = subprocess.Popen([ORGSYNC, "apply", "--yes", "-c", str(conf)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(sandbox))
    try:
        wait_for(lambda: len(sandbox.tenant.users) >= 5, 120, "five users created")
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, errors[-2000:]
    found = re.search(r"interrupted: (\d+) of (\d+) done; run again to finish", errors)
    assert found is not None, errors[-2000:]
    assert int(found.group(2)) == total
    # The departments and five users reached Feishu; at most two calls (the concurrency)
    # landed without their answer, so are not counted done.
    assert 6 + 5 - 2 <= int(found.group(1)) < total
    assert "Traceback" not in errors
    sandbox.configure(latency_ms=0.0)
    done = orgsync(conf, sandbox, "apply", "--yes")
    assert done.returncode == EXIT_OK, done.stderr[-2000:]
    assert sorted(u.user_id for u in sandbox.tenant.users.values()) == sorted(ORG.employees)


def test_progress_bar_says_it_waits_on_the_feishu_limit(conf: Path, sandbox: SandboxServer,
                                                         tmp_path: Path) -> None:
    """On a terminal, moves at Feishu's documented 1/s: the bar says so, with an ETA."""
    sandbox.configure(rate_scale=1.0)
    conf.write_text(conf.read_text().replace('"rate_scale": 10.0', '"rate_scale": 1.0'))
    assert orgsync(conf, sandbox, "apply", "--yes").returncode == EXIT_OK
    people = dict(ORG.employees)
    for key in ("E00010", "E00011", "E00012"):
        other = "D0002" if people[key].department_keys[0] != "D0002" else "D0001"
        people[key] = replace(people[key], department_keys=(other,))
    write_csv(Snapshot(dict(ORG.departments), people), conf.parent / "src")
    main, sub = pty.openpty()
    proc = subprocess.Popen([ORGSYNC, "apply", "--yes", "-c", str(conf)], stdin=sub, stdout=sub,
                            stderr=sub, env=env_for(sandbox, COLUMNS="160"), close_fds=True)
    os.close(sub)
    seen: list[str] = []
    try:
        _read_until(main, "moves: 1/s Feishu limit", seen)
        text = _read_until(main, "3 done, 0 failed", seen)
        assert re.search(r"ETA \dm\d\ds", text)
        assert proc.wait(timeout=60) == EXIT_OK
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)


def test_check_says_what_changed_in_feishu(conf: Path, sandbox: SandboxServer,
                                           sandbox_api: httpx.Client) -> None:
    """Drift made behind orgsync's back: check names it as changed in Feishu, with the value
    found there, and the source's value it would restore."""
    assert orgsync(conf, sandbox, "apply", "--yes").returncode == EXIT_OK
    reply = sandbox_api.patch("/open-apis/contact/v3/users/E00007",
                              params={"user_id_type": "user_id"}, json={"job_title": "CEO"})
    assert reply.json()["code"] == 0
    done = orgsync(conf, sandbox, "check")
    assert done.returncode == EXIT_ERROR
    title = ORG.employees["E00007"].job_title
    assert (f"    ~ E00007 {ORG.employees['E00007'].name}  (changed in Feishu (found there: "
            f"job_title CEO))\n        job_title: CEO → {title}\n") in done.stdout
