"""SCIM ``/Groups`` as source groups, on the real SCIM test server (scim2-server): nested
groups flattened, a cycle ended; then synced into the sandbox's user groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orgsync.config import config_from_dict
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from tests.connectors.scim_server import ENTERPRISE, ScimTestServer
from tests.sandbox_run import SCALE, run

TOKEN = "t0ken"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
GROUPS = {"path": "/Groups", "records": "Resources",
          "pagination": {"type": "offset", "offset_param": "startIndex", "size_param": "count",
                         "start": 1, "size": 2, "total": "totalResults"}}


def _group(srv: ScimTestServer, name: str, members: list[tuple[str, str]]) -> str:
    reply = srv.http.post("/Groups", json={
        "schemas": [GROUP_SCHEMA], "displayName": name,
        "members": [{"value": v, "type": t} for v, t in members]},
        headers={"Content-Type": "application/scim+json"})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def _patch_members(srv: ScimTestServer, group: str, name: str,
                   members: list[tuple[str, str]]) -> None:
    reply = srv.http.put(f"/Groups/{group}", json={
        "schemas": [GROUP_SCHEMA], "displayName": name,
        "members": [{"value": v, "type": t} for v, t in members]},
        headers={"Content-Type": "application/scim+json"})
    assert reply.status_code == 200, reply.text


def test_scim_groups_nested_and_synced(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.configure(rate_scale=SCALE)
    with ScimTestServer(token=TOKEN) as srv:
        ids = []
        for i in range(5):
            user = srv.create_user({
                "userName": f"emp{i}", "name": {"givenName": "三", "familyName": f"张{i}"},
                "phoneNumbers": [{"value": f"+86 139 {i:04d} 0000", "type": "mobile"}],
                ENTERPRISE: {"department": "研发中心"}})
            ids.append(str(user["id"]))
        eng = _group(srv, "eng", [(ids[0], "User")])
        platform = _group(srv, "platform", [(ids[1], "User"), (ids[2], "User"), (eng, "Group")])
        _patch_members(srv, eng, "eng", [(ids[0], "User"), (platform, "Group")])  # a cycle
        _group(srv, "sales", [(ids[3], "User")])
        source: dict[str, Any] = {"type": "hris", "preset": "scim", "base_url": srv.base_url,
                                  "auth": {"token": TOKEN}, "groups": GROUPS}
        cfg = config_from_dict({
            "version": 1,
            "feishu": {"base_url": sandbox.base_url, "app_id": sandbox.config.app_id,
                       "app_secret": sandbox.config.app_secret, "rate_scale": SCALE},
            "source": source, "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"},
            "groups": {"define": {
                "eng": {"name": "Engineering", "members": {"source_group": "eng"}},
                "sales": {"name": "Sales", "members": {"source_group": "sales"}}}}},
            file="<test>", base_dir=tmp_path)
        ledger = Ledger(cfg.ledger.url)
        outcome = run(cfg, ledger)
        assert outcome.exit_code == 0
        tenant = sandbox.tenant
        got = {g["group_id"]: {tenant.users[o].user_id for o in g["members"]}
               for g in tenant.dump_groups()}
        key = {u.user_id: u for u in tenant.users.values()}
        assert {k: len(v) for k, v in got.items()} == {"eng": 3, "sales": 1}
        assert got["eng"] | got["sales"] <= set(key)
        assert sorted(ledger.load_groups()["eng"].members) == sorted(ids[:3])
        assert sorted(ledger.load_groups()["sales"].members) == [ids[3]]
