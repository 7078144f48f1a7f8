"""Day one on LDAP and HRIS sources: a hand-made Feishu tenant taken over (issue 17).

The tenant is built through the sandbox's API from what the source itself yields
(validated), so the matching is exercised on the keys, names and paths each
connector really produces: AD OUs and GUIDs, HRIS department paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orgsync.config import Config, config_from_dict
from orgsync.ledger import Ledger
from orgsync.runner import read_raw
from orgsync.sandbox import SandboxServer
from orgsync.validate import validate
from tests.connectors.json_server import JsonServer
from tests.connectors.ldap import data
from tests.connectors.ldap.slapd import Slapd
from tests.connectors.test_hris import GENERIC, OFFSET, offset_pages
from tests.sandbox_run import SCALE, run
from tests.takeover_tenant import check_taken_over, hand_made, take_over, writes


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def _config(sb: SandboxServer, source: dict[str, Any], tmp_path: Path) -> Config:
    return config_from_dict({
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": sb.config.app_secret, "rate_scale": SCALE},
        "source": source, "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"},
    }, file="<test>", base_dir=tmp_path)


def _take_over(sb: SandboxServer, cfg: Config) -> None:
    org = validate(read_raw(cfg)).snapshot
    made, feishu_only = hand_made(sb, cfg, org)
    ledger = Ledger(cfg.ledger.url)
    _, out = take_over(sb, cfg, ledger)
    check_taken_over(sb, org, made, feishu_only, out, ledger)
    mark = len(writes(sb))
    assert [op.op_id for op in run(cfg, ledger).plan.operations] == []
    assert writes(sb)[mark:] == []


def test_takeover_from_active_directory(sb: SandboxServer, ad: Slapd, tmp_path: Path) -> None:
    _take_over(sb, _config(sb, {"type": "ldap", "preset": "ad", "url": ad.url,
                                "bind_dn": data.AD_READER_DN,
                                "bind_password": data.READER_PASSWORD,
                                "base_dn": data.AD_STAFF, "allow_plaintext": True}, tmp_path))


def test_takeover_from_an_hris_api(sb: SandboxServer, tmp_path: Path) -> None:
    with JsonServer(offset_pages) as srv:
        _take_over(sb, _config(sb, {
            "type": "hris", "base_url": srv.url, "backoff": 0.01,
            "employees": {"path": "/people", "records": "data", "pagination": OFFSET},
            "departments": {"from": "path", "field": "dept"},
            "mapping": {"employees": GENERIC}}, tmp_path))
