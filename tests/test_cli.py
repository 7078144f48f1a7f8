"""The command line against the sandbox: exit codes and what each command prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.errors import (
    EXIT_CHANGES,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_HELD,
    EXIT_OK,
    EXIT_SOURCE,
)
from orgsync.model import Snapshot
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.daemon_proc import wait_for
from tests.pg import free_port

ORG = generate_org(employees=30, departments=6, levels=3)


@pytest.fixture(name="conf")
def _conf(sandbox: SandboxServer, tmp_path: Path) -> Path:
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
        "safety": {"max_user_removals": 2},
    }), encoding="utf-8")
    return path


def cli(conf: Path, *args: str, secret: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "-c", str(conf)],
                                env={"CLI_TEST_SECRET": secret})
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def test_plan_apply_status_history_check(conf: Path, sandbox: SandboxServer) -> None:
    """plan says 2 with changes, apply applies, a second plan is clean; status/history/check agree."""
    secret = sandbox.config.app_secret
    code, text = cli(conf, "plan", "--detailed-exitcode", secret=secret)
    assert code == EXIT_CHANGES
    assert "Summary: department.create=6" in text
    code, text = cli(conf, "apply", "--yes", secret=secret)
    assert code == EXIT_OK
    assert "0 failed, 0 skipped" in text
    code, text = cli(conf, "plan", "--detailed-exitcode", secret=secret)
    assert (code, "No changes." in text) == (EXIT_OK, True)
    code, text = cli(conf, "status", secret=secret)
    assert code == EXIT_OK
    assert "Managed: 6 departments, 30 users (0 frozen, 0 deleted)" in text
    code, text = cli(conf, "history", secret=secret)
    assert code == EXIT_OK
    assert [m for m in ("apply", "plan") if m in text] == ["apply", "plan"]
    code, text = cli(conf, "check", secret=secret)
    assert (code, "No changes." in text) == (EXIT_OK, True)


def test_held_plan_is_approved_by_id(conf: Path, sandbox: SandboxServer) -> None:
    """Over the threshold: exit 5 naming the plan; an unknown id is refused; the right id applies."""
    secret = sandbox.config.app_secret
    assert cli(conf, "apply", "--yes", secret=secret)[0] == EXIT_OK
    bosses = {e.manager_key for e in ORG.employees.values()} | {
        d.leader_key for d in ORG.departments.values()}
    gone = sorted(k for k in ORG.employees if k not in bosses)[:3]
    write_csv(Snapshot(dict(ORG.departments),
                       {k: e for k, e in ORG.employees.items() if k not in gone}),
              conf.parent / "src")
    code, text = cli(conf, "plan", secret=secret)
    assert code == EXIT_HELD
    found = re.search(r"plan (\w+) is held", text)
    assert found is not None
    plan_id = found.group(1)
    assert "exceed safety.max_user_removals=2" in text
    code, text = cli(conf, "status", secret=secret)
    assert f"Held plan {plan_id}" in text
    code, text = cli(conf, "approve", "nope", "--yes", secret=secret)
    assert code == EXIT_ERROR
    assert "no held plan 'nope'" in text
    code, text = cli(conf, "approve", plan_id, "--yes", secret=secret)
    assert code == EXIT_OK
    assert "Applied: 3 done, 0 failed, 0 skipped" in text


def test_bad_config_names_file_and_key(tmp_path: Path) -> None:
    """A config error exits 3 and names the file and the key, never the secret."""
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nfeishu: {app_id: x, app_secret: s3cr3t-xyz, timeout: soon}\n"
                    "source: {type: csv, departments: d.csv, employees: e.csv}\n")
    result = CliRunner().invoke(app, ["plan", "-c", str(path)])
    assert result.exit_code == EXIT_CONFIG
    assert f"{path}: feishu.timeout: expected a number, got 'soon'" in " ".join(
        result.output.split())
    assert "s3cr3t-xyz" not in result.output


def test_the_process_exits_with_the_command_code_and_all_its_output(
        conf: Path, sandbox: SandboxServer, tmp_path: Path) -> None:
    """As a process (``main``, which ends with ``os._exit``): the exit code is the command's
    and output piped elsewhere arrives whole."""
    env = {**os.environ, "CLI_TEST_SECRET": sandbox.config.app_secret,
           "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "orgsync.cli", "plan", "--format", "json", "--detailed-exitcode",
         "-c", str(conf)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == EXIT_CHANGES, done.stderr[-2000:]
    assert len(done.stdout) > 20_000  # more than a pipe's buffer would hold back
    plan = json.loads(done.stdout)
    assert (plan["summary"]["department.create"], plan["summary"]["user.create"]) == (6, 30)
    assert len(plan["operations"]) == sum(plan["summary"].values())

    # Text piped with no COLUMNS: long lines arrive whole, not wrapped at 80 columns.
    long_name = "Research and Development Center for Very Long Department Names Incorporated"
    first = min(ORG.departments)
    write_csv(Snapshot({**ORG.departments,
                        first: replace(ORG.departments[first], en_name=long_name)},
                       ORG.employees), conf.parent / "src")
    text_env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-m", "orgsync.cli", "plan", "-c", str(conf)],
                          capture_output=True, text=True, env=text_env, timeout=120, check=False)
    assert any(len(line) > 80 and long_name in line for line in done.stdout.splitlines())
    summary = next(line for line in done.stdout.splitlines() if line.startswith("Summary:"))
    assert "user.create=30" in summary

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nfeishu: {app_id: x, app_secret: s, timeout: soon}\n")
    done = subprocess.run([sys.executable, "-m", "orgsync.cli", "plan", "-c", str(bad)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == EXIT_CONFIG
    assert "feishu.timeout: expected a number, got 'soon'" in " ".join(done.stderr.split())


@pytest.mark.parametrize("via", ["file", "environment"])
def test_the_sandbox_takes_its_secret_from_a_file_or_the_environment(
        tmp_path: Path, via: str) -> None:
    """`orgsync sandbox --app-secret-file F` (or ORGSYNC_APP_SECRET) serves with that secret,
    and the secret is not on the process's command line (what ps shows)."""
    secret = "file-secret-0123456789"
    port = free_port()
    args = [sys.executable, "-m", "orgsync.cli", "sandbox", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    if via == "file":
        (tmp_path / "secret").write_text(secret + "\n", encoding="utf-8")
        args += ["--app-secret-file", str(tmp_path / "secret")]
    else:
        env["ORGSYNC_APP_SECRET"] = secret
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/open-apis/auth/v3/tenant_access_token/internal"

        def issue(app_secret: str) -> int:
            body = httpx.post(url, json={"app_id": "cli_demo", "app_secret": app_secret},
                              timeout=5).json()
            return int(body["code"])

        assert wait_for(lambda: issue(secret) == 0, 20,
                        "the sandbox")
        assert issue("demo-secret") == 10015
        assert secret not in Path(f"/proc/{proc.pid}/cmdline").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize("via", ["default", "file"])
def test_the_sandbox_says_how_to_call_its_admin_api(tmp_path: Path, via: str) -> None:
    """`orgsync sandbox` prints its URL, the admin token (or where it is read from) and a
    curl line; that line, run as printed, reads the sandbox's state."""
    port = free_port()
    args = [str(Path(sys.executable).with_name("orgsync")), "sandbox", "--port", str(port)]
    if via == "file":
        (tmp_path / "secret").write_text("file-secret-0123456789\n", encoding="utf-8")
        args += ["--app-secret-file", str(tmp_path / "secret")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGSYNC_")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert first.startswith(f"Feishu sandbox on http://127.0.0.1:{port} (app id cli_demo)")
        assert first.rstrip().endswith(f"token: the content of {tmp_path / 'secret'}"
                                       if via == "file" else "token: demo-secret")
        assert second.startswith("  curl -H ")
        done = subprocess.run(["bash", "-c", second.strip() + " --silent"], capture_output=True,
                              text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["code"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize(("args", "expected"), [
    (["--app-secret-file", "{dir}/binary"],
     "error: --app-secret-file: secret file '{dir}/binary' is not UTF-8 text (name the file "
     "that holds only the secret, as text)"),
    (["--app-secret", "x", "--app-secret-file", "{dir}/binary"],
     "error: both --app-secret and --app-secret-file are given (keep only one "
     "(ORGSYNC_APP_SECRET sets the first))"),
])
def test_the_sandbox_refuses_an_unusable_secret_file(tmp_path: Path, args: list[str],
                                                     expected: str) -> None:
    """A secret file that is not text (or given beside --app-secret) exits 3 before serving."""
    (tmp_path / "binary").write_bytes(bytes(range(256)))
    result = CliRunner().invoke(app, ["sandbox", *(a.format(dir=tmp_path) for a in args)])
    assert result.exit_code == EXIT_CONFIG
    assert " ".join(result.output.split()) == expected.format(dir=tmp_path)


def run_on_a_terminal(conf: Path, secret: str, *args: str) -> tuple[int, str]:
    """``orgsync ARGS -c CONF`` as a process that renders as on a terminal (colours, markup);
    (exit code, stdout and stderr joined)."""
    env = {**os.environ, "CLI_TEST_SECRET": secret, "FORCE_COLOR": "1", "COLUMNS": "300",
           "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-m", "orgsync.cli", *args, "-c", str(conf)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    return done.returncode, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def test_markup_in_data_and_config_is_printed_as_text(conf: Path, sandbox: SandboxServer) -> None:
    """Square brackets from outside (a CSV header or cell, a config key, a stored run error)
    are shown as written: no MarkupError, no traceback, the documented exit codes."""
    secret = sandbox.config.app_secret
    employees = conf.parent / "src" / "employees.csv"
    text = employees.read_text(encoding="utf-8")
    first = next(iter(ORG.employees.values()))

    employees.write_text(text.replace("employee_id", "[/oops]", 1), encoding="utf-8")
    for command in ("plan", "preview-source"):
        code, output = run_on_a_terminal(conf, secret, command)
        assert (code, "Traceback" in output) == (EXIT_SOURCE, False), output[-2000:]
        assert "missing required column employee_id (found: '[/oops]'" in output
    code, output = run_on_a_terminal(conf, secret, "status")  # the failed run's stored error
    assert (code, "Traceback" in output) == (EXIT_OK, False), output[-2000:]
    assert re.search(r"error: .*\(found: '\[/oops\]'", output)

    employees.write_text(text.replace(first.name, "[/oops][bold]", 1), encoding="utf-8")
    code, output = run_on_a_terminal(conf, secret, "preview-source", "--limit", "0")
    assert (code, "Traceback" in output) == (EXIT_OK, False), output[-2000:]
    assert "[/oops][bold]" in output
    code, output = run_on_a_terminal(conf, secret, "plan", "--detailed-exitcode")
    assert (code, "Traceback" in output) == (EXIT_CHANGES, False), output[-2000:]
    assert f"{first.key} [/oops][bold]" in output

    data = json.loads(conf.read_text(encoding="utf-8"))
    data["source"]["[/x]"] = 1
    conf.write_text(json.dumps(data), encoding="utf-8")
    for command in ("plan", "preview-source"):
        code, output = run_on_a_terminal(conf, secret, command)
        assert (code, "Traceback" in output) == (EXIT_CONFIG, False), output[-2000:]
        assert f"{conf}: source.[/x]: unknown key" in output
