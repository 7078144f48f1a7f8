"""The full read of the directory (:func:`orgsync.feishu.reader.read_directory`) against the
sandbox over a socket."""

from __future__ import annotations

import asyncio

from orgsync.bench.seed import sandbox_state
from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.feishu.reader import read_directory
from orgsync.sandbox import SandboxServer
from orgsync.state import DirectoryState
from orgsync.synth import generate_org
from tests.sandbox_run import SCALE

CHILDREN = "/children"
MEMBERS = "/open-apis/contact/v3/users/find_by_department"


def test_members_are_read_while_the_department_walk_goes_on(sandbox: SandboxServer) -> None:
    org = generate_org(seed=3, employees=600, departments=400, levels=5)
    sandbox.load(sandbox_state(org))
    sandbox.configure(rate_scale=SCALE)
    settings = FeishuSettings(app_id=sandbox.config.app_id, app_secret=sandbox.config.app_secret,
                              base_url=sandbox.base_url, rate_scale=SCALE)

    async def read() -> DirectoryState:
        async with FeishuClient(settings) as client:
            return await read_directory(client)

    state = asyncio.run(read())
    assert len(state.departments) == 400
    assert len(state.users) == len(org.active_employees())
    log = sandbox.requests()
    walk = [r["seq"] for r in log if r["path"].endswith(CHILDREN)]
    members = [r["seq"] for r in log if r["path"] == MEMBERS]
    assert len(walk) == 8  # 400 departments, 50 a page, one page after another
    assert len(members) == 401  # the root and every department, once
    # the first departments' members were asked for before the walk's last page
    assert min(members) < max(walk)
