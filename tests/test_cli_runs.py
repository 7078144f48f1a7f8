"""``history``, ``status``, ``approve`` and ``discard`` as the console script, off a terminal
and on a pseudo-terminal: why a run ended as it did, and approvals that apply or use nothing up."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from orgsync.errors import EXIT_CONFIG, EXIT_ERROR, EXIT_HELD, EXIT_OK, EXIT_SOURCE
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from orgsync.synth import write_csv
from tests.daemon_proc import wait_for
from tests.test_cli import ORG, _conf
from tests.test_safety import leaves, without

ORGSYNC = str(Path(sys.executable).with_name("orgsync"))
__all__ = ["ORG", "_conf"]  # the conf fixture and its org, as tests/test_cli.py has them


def orgsync(conf: Path, sb: SandboxServer, *args: str) -> tuple[int, str, str]:
    """The console script, no terminal: (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["CLI_TEST_SECRET"] = sb.config.app_secret
    done = subprocess.run([ORGSYNC, *args, "-c", str(conf)], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


def on_a_pty(conf: Path, sb: SandboxServer, *args: str, answer: str = "") -> tuple[int, str]:
    """The console script with a pseudo-terminal as stdin/stdout/stderr (80 columns);
    ``answer`` is typed ahead (the terminal holds it until the program reads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env.update(CLI_TEST_SECRET=sb.config.app_secret, COLUMNS="80", TERM="dumb")
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([ORGSYNC, *args, "-c", str(conf)], stdin=follower,
                                stdout=follower, stderr=follower, env=env, close_fds=True)
        os.close(follower)
        if answer:
            os.write(leader, answer.encode())
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=120)
    finally:
        os.close(leader)
    return code, re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode())


def held_id(text: str) -> str:
    found = re.search(r"plan (\w+) is held", text)
    assert found is not None, text
    return found.group(1)


def history(conf: Path, sb: SandboxServer) -> list[dict[str, Any]]:
    code, stdout, stderr = orgsync(conf, sb, "history", "--format", "json")
    assert code == EXIT_OK, stderr
    records: list[dict[str, Any]] = json.loads(stdout)
    return records


def test_history_and_status_say_why_each_run_ended_as_it_did(conf: Path,
                                                              sandbox: SandboxServer) -> None:
    """ok, held (the threshold), refused (the shrink guard), cancelled (an approval off a
    terminal without --yes, which leaves the plan held), then approved by a named person:
    each with its reason, in JSON and whole in text off a terminal."""
    sb = sandbox
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    write_csv(without(ORG, leaves(ORG, 3)), conf.parent / "src")
    code, _, stderr = orgsync(conf, sb, "plan")
    assert code == EXIT_HELD
    plan_id = held_id(stderr)
    write_csv(without(ORG, leaves(ORG, 20)), conf.parent / "src")
    code, _, stderr = orgsync(conf, sb, "apply", "--yes")
    assert code == EXIT_SOURCE
    write_csv(without(ORG, leaves(ORG, 3)), conf.parent / "src")

    code, stdout, stderr = orgsync(conf, sb, "approve", plan_id)  # no terminal, no --yes
    assert code == EXIT_ERROR
    assert "approved" not in stdout
    assert f"Plan {plan_id} stays held (nothing approved)." in stderr
    code, stdout, _ = orgsync(conf, sb, "status")
    assert f"Held plan {plan_id} since" in stdout
    assert Ledger(f"sqlite:///{conf.parent / 'ledger.db'}").plan_status(plan_id) == "held"

    code, stdout, stderr = orgsync(conf, sb, "approve", plan_id, "--yes", "--by", "alice")
    assert code == EXIT_OK, stderr
    assert f"Plan {plan_id} approved by alice." in stdout
    assert "Applied: 3 done, 0 failed, 0 skipped" in stdout

    records = history(conf, sb)
    assert [(r["mode"], r["status"], r["plan_id"]) for r in records] == [
        ("apply", "ok", plan_id), ("apply", "cancelled", plan_id), ("apply", "refused", None),
        ("plan", "held", plan_id), ("apply", "ok", records[-1]["plan_id"])]
    approved, cancelled, refused, held, first = records
    assert approved["approved_by"] == "alice"
    assert approved["approved_at"] is not None
    assert cancelled["error"] == ("not confirmed: declined at the prompt, or no --yes without "
                                  "a terminal; the plan stays held")
    assert cancelled["approved_by"] is None
    assert refused["error"].startswith("the source has 10 active employees, 67% fewer than "
                                       "the last good read (30)")
    assert held["error"] == "3 user removals (deletes + freezes) exceed safety.max_user_removals=2"
    assert (first["error"], first["approved_by"]) == (None, None)

    code, stdout, _ = orgsync(conf, sb, "history")  # a pipe: one whole run a line
    lines = stdout.splitlines()
    assert lines[0].split("\t") == ["run", "mode", "outcome", "plan", "started", "summary",
                                    "why"]
    row = lines[1].split("\t")
    assert (row[0], row[2], row[3]) == (approved["run_id"], "ok", plan_id)
    assert row[6].startswith("approved by alice at ")
    assert lines[3].split("\t")[6] == refused["error"]
    assert "…" not in stdout

    code, stdout, _ = orgsync(conf, sb, "status", "--format", "json")
    status = json.loads(stdout)
    assert status["held_plans"] == []
    assert (status["last_run"]["run_id"], status["last_run"]["approved_by"]) == (
        approved["run_id"], "alice")
    assert status["managed"] == {"departments": 6, "users": 30, "frozen": 3, "deleted": 0}
    assert orgsync(conf, sb, "history", "-f", "yaml")[0] == EXIT_CONFIG


def test_a_stale_approval_applies_nothing_and_names_the_new_plan(conf: Path,
                                                                  sandbox: SandboxServer) -> None:
    """Held plan X, then the source changes: approving X applies nothing, says so, and
    shows the new plan id (held in turn); a discarded plan cannot be approved."""
    sb = sandbox
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    write_csv(without(ORG, leaves(ORG, 3)), conf.parent / "src")
    first = held_id(orgsync(conf, sb, "plan")[2])
    write_csv(without(ORG, leaves(ORG, 4)), conf.parent / "src")
    writes = len(sb.requests())
    code, _, stderr = orgsync(conf, sb, "approve", first, "--yes")
    assert code == EXIT_HELD
    found = re.search(rf"the source changed since plan {first} was held: the plan now is "
                      r"(\w+) \(4 operations\); nothing was applied\. It is held too", stderr)
    assert found is not None, stderr
    second = found.group(1)
    assert second != first
    assert [r["path"] for r in sb.requests()[writes:] if r["method"] != "GET"
            and "token" not in r["path"]] == []
    assert history(conf, sb)[0]["status"] == "refused"
    code, stdout, _ = orgsync(conf, sb, "status")
    assert f"Held plan {second} since" in stdout

    code, stdout, _ = orgsync(conf, sb, "discard", second, "--by", "bob")
    assert (code, stdout.strip()) == (EXIT_OK, f"Plan {second} discarded.")
    code, _, stderr = orgsync(conf, sb, "approve", second, "--yes")
    assert code == EXIT_ERROR
    assert f"plan {second} is not held: it was discarded" in stderr
    assert orgsync(conf, sb, "discard", "nope")[0] == EXIT_ERROR
    assert orgsync(conf, sb, "approve", second, "--yes")[0] == EXIT_ERROR
    assert not [u for u in sb.tenant.users.values() if u.frozen]


def test_history_on_a_terminal_is_a_table(conf: Path, sandbox: SandboxServer) -> None:
    """On a terminal, history is a table that folds long values instead of cutting them."""
    assert orgsync(conf, sandbox, "apply", "--yes")[0] == EXIT_OK
    run_id = history(conf, sandbox)[0]["run_id"]
    code, text = on_a_pty(conf, sandbox, "history")
    assert code == EXIT_OK
    assert "┃ run" in text or "│ run" in text, text
    assert "\t" not in text
    assert "…" not in text
    assert run_id[:8] in text


def test_an_approval_declined_on_a_terminal_leaves_the_plan_held(conf: Path,
                                                                  sandbox: SandboxServer) -> None:
    """On a terminal approve asks; answered no, nothing is applied or approved."""
    sb = sandbox
    assert orgsync(conf, sb, "apply", "--yes")[0] == EXIT_OK
    write_csv(without(ORG, leaves(ORG, 3)), conf.parent / "src")
    plan_id = held_id(orgsync(conf, sb, "plan")[2])
    # no to the offer to page through the operations, then no to applying them
    code, text = on_a_pty(conf, sb, "approve", plan_id, answer="n\nn\n")
    assert "Page through the operations" in text
    assert "Apply 3 operations to Feishu? [y/N]" in text
    assert (code, "Nothing applied." in text) == (EXIT_ERROR, True), text
    assert f"Plan {plan_id} stays held (nothing approved)." in text
    assert Ledger(f"sqlite:///{conf.parent / 'ledger.db'}").plan_status(plan_id) == "held"
    assert not [u for u in sb.tenant.users.values() if u.frozen]


def test_an_interrupted_run_is_recorded_as_interrupted(conf: Path,
                                                       sandbox: SandboxServer) -> None:
    """Ctrl-C during an apply: the run is recorded interrupted (not failed), with why."""
    sb = sandbox
    sb.configure(latency_ms=300.0)
    env = {**os.environ, "CLI_TEST_SECRET": sb.config.app_secret}
    proc = subprocess.Popen([ORGSYNC, "apply", "--yes", "-c", str(conf)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    ledger = Ledger(f"sqlite:///{conf.parent / 'ledger.db'}")
    try:
        wait_for(lambda: any(r.status == "done" for r in ledger.journal()), 60,
                 "the first write")
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    run = history(conf, sb)[0]
    assert (run["mode"], run["status"], run["outcome"]) == ("apply", "interrupted",
                                                            "interrupted")
    assert run["error"]
