"""Secrets in URLs stay hidden: in logs, CLI errors, the ledger's runs and ``GET /runs``.

An HRIS endpoint carrying its API key in the query string meets a failing server; a
PostgreSQL ledger password holding an unencoded ``@`` meets the config, the CLI and the
ledger. The secrets are planted ones (:mod:`tests.planted`), so the suite's leak scan
watches for them too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import config_from_dict
from orgsync.errors import EXIT_CONFIG, EXIT_SOURCE, ConfigError, LedgerError
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from orgsync.urls import mask_url, mask_urls
from tests.connectors.json_server import JsonServer, Reply
from tests.daemon_proc import TOKEN, InProcessDaemon, config_data, daemon_config, write_config
from tests.pg import PostgresServer, _postgres  # noqa: F401 - fixture
from tests.planted import HR_TOKEN, PG_PASSWORD, PG_PASSWORD_HEAD, PG_PASSWORD_TAIL

ROOT = Path(__file__).resolve().parent.parent


def cli(args: list[str], conf: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m orgsync.cli ARGS -c CONF`` with ``env`` added."""
    return subprocess.run([sys.executable, "-m", "orgsync.cli", *args, "-c", str(conf)],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def hris_source(url: str) -> dict[str, Any]:
    """An hris source whose endpoint path carries the HR token in its query string."""
    return {"type": "hris", "base_url": url, "backoff": 0.01, "max_retries": 1,
            "employees": {"path": "/people?api_key=${HR_TOKEN}", "records": "data"},
            "departments": {"from": "path", "field": "dept"},
            "mapping": {"employees": {"key": "id", "name": "name", "mobile": "mobile"}}}


def test_a_token_in_an_endpoint_query_is_never_shown(sandbox: SandboxServer,
                                                     tmp_path: Path) -> None:
    """A 5xx HR API: the retry log line, the CLI error, runs.error and GET /runs mask it."""
    with JsonServer(lambda c: Reply(502, text="bad gateway")) as hr:
        data = {**config_data(sandbox, tmp_path, f"sqlite:///{tmp_path / 'l.db'}"),
                "source": hris_source(hr.url), "logging": {"format": "json", "level": "debug"}}
        conf = write_config(tmp_path / "orgsync.yaml", data)
        result = cli(["plan"], conf, HR_TOKEN=HR_TOKEN)
    assert [c.query for c in hr.calls] == [{"api_key": HR_TOKEN}] * 2  # the API got it
    assert result.returncode == EXIT_SOURCE, result.stderr
    shown = "hris /people?api_key=*** page 1"
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    retries = [e for e in events if e["event"] == "hris.retry"]
    assert [(e["what"], e["attempt"]) for e in retries] == [(shown, 1)]
    assert f"{shown}: HTTP 502 Bad Gateway: bad gateway (2 attempts)" in result.stderr
    assert HR_TOKEN not in result.stdout + result.stderr

    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        [run] = ledger.runs(limit=5)
    finally:
        ledger.close()
    assert (run.status, run.error) == ("failed", f"{shown}: HTTP 502 Bad Gateway: bad gateway "
                                                 "(2 attempts); the read is aborted, nothing "
                                                 "was synced")

    daemon = InProcessDaemon(daemon_config(data, tmp_path, env={"HR_TOKEN": HR_TOKEN}))
    try:
        body = daemon.get("/runs", token=TOKEN).text
    finally:
        assert daemon.stop() == 0
    assert shown in body
    assert HR_TOKEN not in body


def pg_url(port: int, password: str) -> str:
    """A ledger URL for user postgres with ``password`` written into it as given."""
    return f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres"


def test_a_ledger_password_with_an_unencoded_at_sign_is_never_shown(tmp_path: Path) -> None:
    """config refuses it (exit 3) naming the remedy; the ledger refuses it too; no half shows."""
    url = pg_url(5, PG_PASSWORD)
    doc = {"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
           "source": {"type": "csv", "employees": "e.csv"}, "ledger": {"url": url}}
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc, file="orgsync.yaml", base_dir=tmp_path)
    assert str(err.value) == (
        "orgsync.yaml: ledger.url: 'postgresql+psycopg://postgres:***@127.0.0.1:5/postgres': "
        "the password holds a reserved character, so part of it would be read as the host "
        "name (percent-encode the user name and password: @ → %40, : → %3A, / → %2F, "
        "? → %3F, # → %23, % → %25)")

    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps(doc))
    result = cli(["plan"], conf)
    assert result.returncode == EXIT_CONFIG
    assert "ledger.url: 'postgresql+psycopg://postgres:***@127.0.0.1:5/postgres'" \
        in result.stderr
    with pytest.raises(LedgerError) as ledger_err:
        Ledger(url)
    for text in (str(err.value), result.stdout + result.stderr, str(ledger_err.value)):
        assert PG_PASSWORD_HEAD not in text
        assert PG_PASSWORD_TAIL not in text


def test_the_percent_encoded_password_reaches_postgresql(postgres: PostgresServer) -> None:
    """The documented remedy works: %40 opens the ledger on the right host."""
    url = pg_url(postgres.port, PG_PASSWORD.replace("@", "%40"))
    ledger = Ledger(url)
    try:
        assert ledger.runs(limit=1) == []
    finally:
        ledger.close()
    assert mask_url(url) == f"postgresql+psycopg://postgres:***@127.0.0.1:{postgres.port}/postgres"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hr.example.com/people?api_key=abc&limit=5#x",
     "https://hr.example.com/people?api_key=***&limit=***#***"),
    ("https://TOKEN123@hr.example.com/p", "https://***@hr.example.com/p"),
    ("http://svc:pw@127.0.0.1:8080/x?sig", "http://svc:***@127.0.0.1:8080/x?***"),
    ("postgresql+psycopg://u:a@b:c@db:5432/o?sslmode=require",
     "postgresql+psycopg://u:***@db:5432/o?sslmode=***"),
    ("postgresql://u:p/ss@h/d", "postgresql://u:***@h/d"),
    ("postgresql://u:p?ss@h/d", "postgresql://u:***@h/d"),
    ("ldaps://dc1.corp.example.com:636", "ldaps://dc1.corp.example.com:636"),
    ("/people?api_key=abc", "/people?api_key=***"),
    ("sqlite:////var/lib/orgsync/l.db", "sqlite:////var/lib/orgsync/l.db"),
])
def test_mask_url(url: str, shown: str) -> None:
    """Userinfo and query values are masked; scheme, host, port, path and names stay."""
    assert mask_url(url) == shown
    if "://" in url:  # inside a text, a URL is found by its scheme
        assert mask_urls(f"cannot reach {url}, giving up") == f"cannot reach {shown}, giving up"
