"""Fail fast: Feishu unreachable or refusing the credentials stops a run at the first call
that meets it, with the words ``orgsync doctor`` uses and exit 9 — never a plan of people
"held back (Feishu -1)", never an apply that spends every operation's retry budget."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.errors import EXIT_FEISHU, FeishuUnusable
from orgsync.ledger import Ledger
from orgsync.runner import run_once
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.pg import free_port
from tests.sandbox_run import SCALE, config, run

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
ORG = generate_org(employees=30, departments=6, levels=3)


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def _conf(tmp_path: Path, base_url: str, app_id: str, secret: str) -> Path:
    write_csv(ORG, tmp_path / "src")
    path = tmp_path / "orgsync.yaml"
    path.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": base_url, "app_id": app_id, "app_secret": secret,
                   "rate_scale": SCALE, "max_retries": 1, "timeout": 2},
        "source": {"type": "csv", "departments": "src/departments.csv",
                   "employees": "src/employees.csv"},
        "ledger": {"url": "sqlite:///ledger.db"},
    }), encoding="utf-8")
    return path


def _cli(conf: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "-c", str(conf)])
    return result.exit_code, " ".join(result.output.split())


def test_plan_with_a_wrong_secret_stops_with_the_credentials_remedy(sb: SandboxServer,
                                                                    tmp_path: Path) -> None:
    """Joiners need an account lookup: its token call is refused (10015), and plan stops
    (exit 9) naming the refusal and the key to fix, with one token call and no other."""
    conf = _conf(tmp_path, sb.base_url, sb.config.app_id, "wrong-secret")
    mark = len(sb.requests())

    code, text = _cli(conf, "plan")

    assert code == EXIT_FEISHU
    assert "Feishu refuses the app secret (10015 wrong app secret)" in text
    assert "feishu.app_secret" in text
    assert "held back" not in text
    assert [r["path"] for r in sb.requests()[mark:]] == [TOKEN_PATH]


def test_plan_with_feishu_unreachable_stops_with_the_connect_error(tmp_path: Path) -> None:
    """Nothing listens at base_url: plan stops after one call's retries (exit 9), saying
    which step failed, instead of planning every joiner as held back (Feishu -1)."""
    url = f"http://127.0.0.1:{free_port()}"
    conf = _conf(tmp_path, url, "cli_x", "s")

    code, text = _cli(conf, "plan")

    assert code == EXIT_FEISHU
    assert f"Feishu at {url} cannot be reached: connection failed (ConnectError" in text
    assert "feishu.base_url" in text
    assert "held back" not in text


def test_apply_stops_after_the_first_call_that_loses_the_connection(sb: SandboxServer,
                                                                    tmp_path: Path) -> None:
    """Every connection drops mid-run: the first failing operation spends its retries
    (1 + max_retries attempts), then the run stops — no other operation is tried, the
    run is recorded failed, and the error says Feishu cannot be reached."""
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"concurrency": 1,
                                                               "adopt_existing": False})
    cfg = replace(cfg, feishu=replace(cfg.feishu, max_retries=2))
    ledger = Ledger(cfg.ledger.url)
    sb.configure(fault_drop=1.0, fault_after_apply=0.0)
    mark = len(sb.requests())

    with pytest.raises(FeishuUnusable) as caught:
        run(cfg, ledger)

    business = [r for r in sb.requests()[mark:] if r["path"] != TOKEN_PATH]
    assert len(business) == 3  # one operation: its first attempt and two retries
    assert len({(r["method"], r["path"]) for r in business}) == 1
    assert caught.value.check == "reachable"
    assert "cannot be reached: connection lost" in str(caught.value)
    assert ledger.runs(limit=1)[0].status == "failed"


def test_check_with_a_wrong_secret_stops_before_reading(sb: SandboxServer,
                                                        tmp_path: Path) -> None:
    """check reads Feishu live: a refused token stops it with FeishuUnusable (credentials)."""
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
    cfg = replace(cfg, feishu=replace(cfg.feishu, app_secret="nope"))
    with pytest.raises(FeishuUnusable) as caught:
        asyncio.run(run_once(cfg, Ledger(cfg.ledger.url), apply=False, full=True))
    assert (caught.value.check, caught.value.code) == ("credentials", 10015)


class _AnswersThenDrops:
    """A real HTTP server: tokens are granted; the first business request gets a 500
    envelope, every later one a truncated body (the connection is lost mid-answer)."""

    def __init__(self) -> None:
        self.business = 0
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        if length:
            await reader.readexactly(length)
        if TOKEN_PATH in head.split("\r\n")[0]:
            body = json.dumps({"code": 0, "msg": "ok", "tenant_access_token": "t-1",
                               "expire": 7200}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        else:
            self.business += 1
            if self.business == 1:
                body = json.dumps({"code": 40003, "msg": "internal error"}).encode()
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\n"
                             b"Content-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 64\r\n\r\n{\"code\": 0")
        await writer.drain()
        writer.close()


def test_a_call_that_was_answered_once_fails_alone_when_its_last_attempt_drops() -> None:
    """Feishu answered the call's first attempt (a 500) and dropped the later ones: it is
    reachable, so only that call fails (FeishuRetryable, code -1) — the run is not stopped
    as if Feishu could not be reached (a torture run with 5xx and drops met exactly this)."""
    from orgsync.errors import FeishuRetryable
    from orgsync.feishu.client import FeishuClient
    from orgsync.feishu.settings import FeishuSettings

    server = _AnswersThenDrops()

    async def go() -> BaseException:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", server.port)
        settings = FeishuSettings(app_id="cli_x", app_secret="s",
                                  base_url=f"http://127.0.0.1:{server.port}", timeout=2,
                                  max_retries=2, rate_limits=False)
        try:
            async with FeishuClient(settings, light=True) as client:
                try:
                    await client.get_department("D1")
                except Exception as exc:
                    return exc
                raise AssertionError("the call succeeded")
        finally:
            srv.close()

    error = asyncio.run(go())

    assert server.business == 3  # the first attempt and two retries
    assert type(error) is FeishuRetryable
    assert error.code == -1
    assert "connection lost" in error.msg
