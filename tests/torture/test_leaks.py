"""Leaks: secrets never in logs, plan output, errors or the ledger; PII masked; ledger 0600.

One real CLI apply (debug logging, JSON) against the sandbox, plus a failing run with a
wrong secret, then every byte they left behind is scanned.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connectors.ldap import LdapConnector
from orgsync.errors import ConfigError
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.torture.harness import config_dict, report

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "torture-admin-token-6b1f"


def _cli(args: list[str], conf: Path, secret: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TORTURE_SECRET": secret}
    return subprocess.run([sys.executable, "-m", "orgsync.cli", *args, "-c", str(conf)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _tenant_token(sb: SandboxServer) -> str:
    """The tenant token the sandbox hands out now (the one the CLI used: tokens are reused)."""
    reply = httpx.post(f"{sb.base_url}/open-apis/auth/v3/tenant_access_token/internal",
                       json={"app_id": sb.config.app_id, "app_secret": sb.config.app_secret})
    token: str = reply.json()["tenant_access_token"]
    return token


@pytest.mark.timeout(120)
def test_secrets_never_leak_and_pii_is_masked(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Apply + plan + a failing run: no secret or token anywhere; mobiles/emails masked in logs."""
    sandbox.configure(admin_token=ADMIN, rate_scale=10.0)
    org = generate_org(employees=20, departments=4, levels=2)
    write_csv(org, tmp_path / "src")
    doc = config_dict(sandbox, tmp_path / "src", tmp_path / "state" / "l.db")
    doc["feishu"]["app_secret"] = "${TORTURE_SECRET}"
    doc["logging"] = {"format": "json", "level": "debug"}
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps(doc), encoding="utf-8")
    secret = sandbox.config.app_secret
    runs = [_cli(["plan"], conf, secret), _cli(["apply", "--yes"], conf, secret),
            _cli(["plan"], conf, secret), _cli(["check"], conf, "wrong-secret-41d9")]
    assert runs[1].returncode == 0, runs[1].stderr[-2000:]
    assert runs[3].returncode != 0
    ledger_file = tmp_path / "state" / "l.db"
    assert stat.S_IMODE(ledger_file.stat().st_mode) == 0o600
    token = _tenant_token(sandbox)
    outputs = "".join(r.stdout + r.stderr for r in runs)
    ledger_bytes = b"".join(p.read_bytes() for p in ledger_file.parent.iterdir())
    secrets = {"app secret": secret, "tenant token": token, "admin token": ADMIN,
               "wrong secret": "wrong-secret-41d9"}
    for name, value in secrets.items():
        assert value not in outputs, f"{name} in CLI output"
        assert value.encode() not in ledger_bytes, f"{name} in the ledger"
    logs = "".join(r.stderr for r in runs)
    people = org.active_employees().values()
    leaked = [v for e in people for v in (e.email, e.mobile) if v and v in logs]
    assert leaked == []
    report("leaks", cli_runs=len(runs), bytes_scanned=len(outputs) + len(ledger_bytes),
           secrets_checked=len(secrets), pii_values_checked=2 * len(org.active_employees()),
           leaked=0)


def test_ledger_is_created_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    """umask 000: the SQLite ledger file still starts 0600."""
    from orgsync.ledger import Ledger

    old = os.umask(0)
    try:
        ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
        ledger.start_run("plan")
        ledger.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "l.db").stat().st_mode) == 0o600


def test_ldap_match_values_are_escaped_in_the_filter() -> None:
    """match values with ( ) * \\ NUL are escaped; an attribute name with '=' is refused."""
    conn = LdapConnector.from_config(
        {"preset": "openldap", "url": "ldap://127.0.0.1:1", "base_dn": "dc=x",
         "match": {"title": ["R&D (Beijing)*", "a\\b\x00"]}}, base_dir=Path("/tmp"),
        file="o.yaml")
    assert "(title=R&D \\28Beijing\\29\\2a)" in conn.user_filter
    assert "(title=a\\5cb\\00)" in conn.user_filter
    with pytest.raises(ConfigError) as err:
        LdapConnector.from_config(
            {"preset": "openldap", "url": "ldap://127.0.0.1:1", "base_dn": "dc=x",
             "match": {"title=*)(uid": "x"}}, base_dir=Path("/tmp"), file="o.yaml")
    assert err.value.key is not None
    assert "match" in err.value.key


def test_logs_mask_pii_and_redact_secrets_by_default() -> None:
    """Default logging masks bare, +86 and spaced mobiles and emails, nested too; secrets redacted."""
    import io

    import structlog

    from orgsync import logs

    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    structlog.get_logger("t").warning(
        "x", mobile="13800138000", body={"mobile": "+86 138 0013 8001", "email": "zhang@ex.com",
                                         "auth": {"app_secret": "s3"}, "token": "t0k"},
        items=["13900139002"], log_id="202611241333110000000137471A03")
    event = json.loads(out.getvalue())
    text = out.getvalue()
    for raw in ("13800138000", "0013 8001", "zhang@ex.com", "13900139002", "\"s3\"", "t0k"):
        assert raw not in text, raw
    assert event["mobile"] == "138****000"
    assert event["body"]["email"] == "z***@ex.com"
    assert event["log_id"] == "202611241333110000000137471A03"  # ids stay readable
