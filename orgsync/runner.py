"""One run, the same code path for the CLI and the daemon.

read → validate → guard → diff → plan → (dry-run: stop) → apply → record.
Every step before apply is free of Feishu calls: incremental runs diff against
the ledger's mirror.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from connectors.registry import build_connector
from orgsync.config import Config
from orgsync.diff import DiffPolicy, diff
from orgsync.errors import EXIT_APPLY_FAILED, EXIT_OK, OrgsyncError, SourceError
from orgsync.executor import ApplyResult, Executor, OpResult
from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.issues import SourceData
from orgsync.ledger import Ledger
from orgsync.plan import Plan
from orgsync.reader import read_directory
from orgsync.state import DirectoryState, Lifecycle, MirrorDepartment, MirrorUser
from orgsync.validate import validate

log = structlog.get_logger("orgsync.run")


@dataclass(slots=True)
class RunOutcome:
    """What a run did."""

    run_id: str
    plan: Plan
    result: ApplyResult | None = None
    cancelled: bool = False

    @property
    def exit_code(self) -> int:
        """0 when everything planned was applied (or nothing was), 6 when some writes failed."""
        if self.result is not None and (self.result.count("failed") or
                                        self.result.count("skipped")):
            return EXIT_APPLY_FAILED
        return EXIT_OK


def feishu_settings(config: Config) -> FeishuSettings:
    """Client settings from the ``feishu`` config section."""
    f = config.feishu
    return FeishuSettings(app_id=f.app_id, app_secret=f.app_secret, base_url=f.base_url,
                          timeout=f.timeout, max_retries=f.max_retries,
                          rate_limits=f.rate_limits, rate_scale=f.rate_scale)


def read_source(config: Config, ledger: Ledger) -> SourceData:
    """Read and validate the source; refuse to go on when it cannot be trusted.

    Raises :class:`SourceError` for a failed read or an empty org while orgsync
    manages users — a failed read must never look like "everyone left".
    """
    connector = build_connector(config.source)
    try:
        data = connector.read()
    except OrgsyncError:
        raise
    except Exception as exc:  # a connector bug is still a failed read, never an empty org
        raise SourceError(f"source {config.source.type} failed: {exc}") from exc
    data = validate(data)
    active = len(data.snapshot.active_employees())
    if active == 0 and not data.snapshot.departments:
        managed = ledger.get_meta("last_good_employees")
        raise SourceError(
            "the source returned an empty org"
            + (f" (last good read had {managed} employees)" if managed else "")
            + "; refusing to plan deletes from it. Check the source and run again.")
    return data


async def live_state(config: Config, ledger: Ledger) -> DirectoryState:
    """What Feishu holds now for the entities orgsync manages (a full read).

    Managed scope is the mirror's: a department or user orgsync never created or
    adopted is not in the result, so it is never changed or deleted. A managed
    entity missing from Feishu (deleted behind orgsync's back) is left out too,
    so the diff creates it again. Raises on any read error: a partial read must
    never be diffed.
    """
    mirror = ledger.load_state()
    rdept = {m.feishu_id: k for k, m in mirror.departments.items()}
    ruser = {m.feishu_id: k for k, m in mirror.users.items()}
    async with FeishuClient(feishu_settings(config)) as client:
        live = await read_directory(client, reverse_departments=rdept, reverse_users=ruser)
    state = DirectoryState()
    for k, md in mirror.departments.items():
        ld = live.departments.get(k)
        if ld is not None:
            state.departments[k] = MirrorDepartment(ld.record, md.feishu_id, ld.open_id or md.open_id)
    for k, mu in mirror.users.items():
        lu = live.users.get(k)
        if mu.lifecycle is Lifecycle.DELETED:
            state.users[k] = mu  # resigned users are not listed; keep the dates for rehires
        elif lu is not None:
            lifecycle = Lifecycle.FROZEN if lu.lifecycle is Lifecycle.FROZEN else Lifecycle.ACTIVE
            state.users[k] = MirrorUser(lu.record, mu.feishu_id, lu.open_id or mu.open_id,
                                        lifecycle, mu.frozen_at if lifecycle is Lifecycle.FROZEN
                                        else None, None)
    return state


async def make_plan(config: Config, ledger: Ledger, *, full: bool = False,
                    rebuild_mirror: bool = True) -> Plan:
    """The plan that makes Feishu match the source.

    Incremental (default): diff against the ledger's mirror, no Feishu calls.
    ``full``: read Feishu live first (after the source read succeeded), rebuild
    the mirror from it unless ``rebuild_mirror`` is off (``check``), then diff —
    drift made behind orgsync's back shows up as changes that applying repairs.
    """
    data = read_source(config, ledger)
    if full:
        state = await live_state(config, ledger)
        if rebuild_mirror:
            ledger.replace_mirror(state)
    else:
        state = ledger.load_state()
    plan = diff(data, state, DiffPolicy(leaver_action=config.sync.leaver_action))
    log.info("plan.ready", plan_id=plan.plan_id, operations=len(plan.operations),
             held=sum(1 for i in plan.issues if i.severity == "error"), full=full)
    ledger.set_meta("last_good_employees", str(len(data.snapshot.active_employees())))
    return plan


async def apply_plan(config: Config, ledger: Ledger, plan: Plan, *, run_id: str,
                     progress: Callable[[OpResult], None] | None = None) -> ApplyResult:
    """Apply ``plan`` through one shared Feishu client."""
    async with FeishuClient(feishu_settings(config)) as client:
        executor = Executor(client, ledger, run_id=run_id, concurrency=config.sync.concurrency,
                            progress=progress)
        return await executor.run(plan)


async def run_once(config: Config, ledger: Ledger, *, apply: bool, full: bool = False,
                   show: Callable[[Plan], None] | None = None,
                   confirm: Callable[[Plan], bool] | None = None,
                   progress: Callable[[OpResult], None] | None = None) -> RunOutcome:
    """A whole run, recorded in the ledger's run table.

    ``full`` reads Feishu live: a resync (drift repaired, mirror rebuilt) when
    applying, a drift check (nothing written anywhere but the run record) when not.
    ``show`` is called with the plan before anything is written; ``confirm``
    (when given) may decline the apply, which then records the run as cancelled.
    """
    interrupted = ledger.recover_interrupted()
    mode = ("resync" if apply else "check") if full else ("apply" if apply else "plan")
    run_id = ledger.start_run(mode)
    structlog.contextvars.bind_contextvars(run_id=run_id)
    if interrupted:
        log.warning("run.recovering", interrupted_operations=interrupted)
    try:
        plan = await make_plan(config, ledger, full=full, rebuild_mirror=apply)
        outcome = RunOutcome(run_id, plan)
        if show is not None:
            show(plan)
        if apply and not plan.empty and confirm is not None and not confirm(plan):
            ledger.finish_run(run_id, "cancelled", plan_id=plan.plan_id, summary=plan.summary())
            outcome.cancelled = True
            return outcome
        if apply and not plan.empty:
            outcome.result = await apply_plan(config, ledger, plan, run_id=run_id,
                                              progress=progress)
        summary: dict[str, int] = dict(plan.summary())
        if outcome.result is not None:
            summary.update({f"ops_{k}": v for k, v in outcome.result.summary().items()})
        status = "ok" if outcome.exit_code == EXIT_OK else "partial"
        ledger.finish_run(run_id, status, plan_id=plan.plan_id, summary=summary)
        return outcome
    except BaseException as exc:
        ledger.finish_run(run_id, "failed", error=str(exc)[:2000])
        raise
    finally:
        structlog.contextvars.unbind_contextvars("run_id")
