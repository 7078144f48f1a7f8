"""The executor's scheduling contract: dependency order, failure isolation, journaling.

A small stand-in plays Feishu here (recording calls, failing on request); the
end-to-end tests drive the executor against the sandbox over a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orgsync.diff import diff
from orgsync.errors import FeishuTerminal
from orgsync.executor import Executor
from orgsync.ledger import Ledger
from orgsync.model import Department, Employee, Snapshot
from orgsync.source import SourceData
from orgsync.state import DirectoryState


class StandIn:
    """Answers like Feishu would, records the order of calls, fails where told."""

    def __init__(self, fail: Mapping[str, Exception] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = dict(fail or {})

    def _call(self, name: str) -> dict[str, Any]:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]
        return {"open_id": "ou_" + name, "open_department_id": "od-" + name}

    async def create_department(self, body: Mapping[str, Any], *,
                                client_token: str | None = None) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self._call("dept:" + body["department_id"])

    async def get_department(self, department_id: str) -> dict[str, Any]:
        return self._call("get-dept:" + department_id)

    async def patch_department(self, department_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("patch-dept:" + department_id)

    async def delete_department(self, department_id: str) -> None:
        self._call("delete-dept:" + department_id)

    async def create_user(self, body: Mapping[str, Any], *,
                          client_token: str | None = None) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self._call("user:" + body["user_id"])

    async def get_user(self, user_id: str) -> dict[str, Any]:
        return self._call("get-user:" + user_id)

    async def patch_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("patch-user:" + user_id)

    async def delete_user(self, user_id: str, handover: Mapping[str, Any] | None = None) -> None:
        self._call("delete-user:" + user_id)

    async def resurrect_user(self, user_id: str, departments: Any) -> None:
        self._call("resurrect-user:" + user_id)


ORG = Snapshot.of(
    [Department(key="A", name="甲"), Department(key="B", name="乙", parent_key="A"),
     Department(key="C", name="丙")],
    [Employee(key="E1", name="一", department_keys=("B",), mobile="+8613800000001"),
     Employee(key="E2", name="二", department_keys=("C",), mobile="+8613800000002",
              manager_key="E1")],
)


def run(api: StandIn, tmp_path: Path) -> tuple[Any, Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    plan = diff(SourceData(ORG), DirectoryState())
    ex = Executor(api, ledger, run_id=ledger.start_run("apply"), concurrency=4)  # type: ignore[arg-type]
    return asyncio.run(ex.run(plan)), ledger


def test_dependencies_run_first(tmp_path: Path) -> None:
    """A child department is created only after its parent, a user after their department."""
    api = StandIn()
    result, ledger = run(api, tmp_path)
    assert result.summary() == {"done": 5, "failed": 0, "skipped": 0}
    assert api.calls.index("dept:A") < api.calls.index("dept:B") < api.calls.index("user:E1")
    assert api.calls.index("user:E1") < api.calls.index("user:E2")  # the manager first
    assert not any(c.startswith("patch-user") for c in api.calls)  # linked in the create
    state = ledger.load_state()
    assert sorted(state.departments) == ["A", "B", "C"]
    assert state.users["E2"].record.manager_key == "E1"
    assert state.users["E1"].open_id == "ou_user:E1"


def test_failure_skips_dependants_and_nothing_else(tmp_path: Path) -> None:
    """A failed parent skips its subtree's work; independent work completes; all journaled.

    E2's create names E1, whose create was skipped: E2 is created without the link (the
    mirror says so, so the next run links them), not skipped with E1."""
    api = StandIn({"dept:A": FeishuTerminal(43022, "department name duplicate")})
    result, ledger = run(api, tmp_path)
    by_op = {r.op.op_id: r.status for r in result.results}
    assert by_op["department.create:A"] == "failed"
    assert by_op["department.create:B"] == "skipped"
    assert by_op["user.create:E1"] == "skipped"
    assert by_op["department.create:C"] == "done"
    assert by_op["user.create:E2"] == "done"
    done_e2 = next(r.op for r in result.results if r.op.op_id == "user.create:E2")
    assert "leader_user_id" not in done_e2.payload
    journal = {(r.op_id, r.status, r.code) for r in ledger.journal()}
    assert ("department.create:A", "failed", 43022) in journal
    assert ("department.create:B", "skipped", None) in journal
    state = ledger.load_state()
    assert sorted(state.departments) == ["C"]
    assert state.users["E2"].record.manager_key is None
    again = diff(SourceData(ORG), state)
    assert [op.op_id for op in again.operations if op.key == "E2"] == ["user.set_manager:E2"]


def test_unexpected_exception_is_a_failed_operation_not_a_hang(tmp_path: Path) -> None:
    """A bug or odd transport error in one call fails that operation; the run still ends."""
    api = StandIn({"user:E2": RuntimeError("boom")})
    result, _ = run(api, tmp_path)
    by_op = {r.op.op_id: (r.status, r.code, r.message) for r in result.results}
    assert by_op["user.create:E2"] == ("failed", -1, "RuntimeError: boom")
    assert by_op["user.create:E1"][0] == "done"
    assert result.count("done") == 4
