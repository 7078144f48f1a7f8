"""``orgsync daemon``: runs on a schedule, one at a time, on the leader only.

The daemon only schedules; every run is :func:`orgsync.runner.run_once`, the same
code path as the CLI (incremental = ``orgsync apply``, full = ``orgsync resync``).

Contracts:

* **Schedules** (APScheduler, ``daemon`` config): incremental runs on an interval
  or a cron, full resyncs on their own cron (or interval), each with optional
  jitter. A fire-time missed by less than ``misfire_grace`` (the process was
  busy or paused) still runs; several missed fire-times run once (coalesced).
* **One run at a time.** A trigger (schedule, ``POST /resync``) while a run is
  going is queued in a single pending slot: a second trigger folds into it (a
  full resync covers an incremental), so work never piles up.
* **Leadership** (:mod:`orgsync.daemon.leader`): only the process holding the ledger's
  leader lock schedules runs; the others poll every ``leader_poll`` seconds and
  take over when the leader dies. A leader that loses its lock stops scheduling.
* **One writer** (:mod:`orgsync.writer`): each run holds the ledger's writer lock,
  like ``orgsync apply``. A run that finds it taken (a command is writing) is
  skipped — logged ``run.skipped`` with the holder, outcome ``skipped``, no alert;
  the next fire-time tries again. A run that loses it stops before its next write.
* **Runs go in a worker thread** with their own event loop, so the admin
  endpoint answers while a run reads a slow source.
* **SIGTERM / SIGINT**: no new work is taken, the scheduler stops, the run in
  progress gets ``shutdown_grace`` seconds to finish; after that it is cancelled:
  calls in flight are left journaled as ``started`` (with their client tokens),
  and the next run settles them. The process then exits 0. A second signal
  cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from orgsync import writer
from orgsync.config import Config, cron_fields
from orgsync.daemon.admin import Ticket, build_admin_app
from orgsync.daemon.leader import LeaderLock, leader_lock
from orgsync.daemon.metrics import CONTENT_TYPE, DaemonMetrics
from orgsync.errors import EXIT_ERROR, EXIT_OK, OrgsyncError, PlanHeld, WriterBusy
from orgsync.feishu.client import ClientStats
from orgsync.leave_sync import leave_run
from orgsync.ledger import Ledger
from orgsync.runner import RunOutcome, run_once
from orgsync.tables import RunRow
from orgsync.urls import mask_url, mask_urls

log = structlog.get_logger("orgsync.daemon")

RunKind = Literal["incremental", "full", "leave"]
CANCEL_WAIT = 10.0
"""Seconds a cancelled run gets to unwind (journal, run record) before the process exits."""
DAEMON_MODES = ("apply", "resync")
"""Ledger run modes the daemon's runs are recorded with (what ``/readyz`` looks at)."""


class RunInterrupted(Exception):
    """The run was cancelled at shutdown."""


@dataclass(slots=True)
class RunRecord:
    """A run as the daemon saw it."""

    kind: str
    trigger: str
    outcome: str
    started_at: float
    finished_at: float
    run_id: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"run_id": self.run_id, "kind": self.kind, "trigger": self.trigger,
                "outcome": self.outcome, "error": self.error,
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "duration_seconds": round(self.finished_at - self.started_at, 3)}


@dataclass(slots=True)
class _Pending:
    kind: RunKind
    trigger: str
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)


class Daemon:
    """One daemon process: scheduler, run slot, leadership, admin endpoint.

    ``serve()`` runs until :meth:`request_stop` (or SIGTERM/SIGINT when
    ``handle_signals``) and returns the exit code. ``admin_port`` is the bound
    port once serving (useful with ``admin.port: 0``).
    """

    def __init__(self, config: Config, *, handle_signals: bool = True) -> None:
        self.config = config
        self.handle_signals = handle_signals
        self.metrics = DaemonMetrics()
        self.ledger = Ledger(config.ledger.url)
        self.lock: LeaderLock = leader_lock(config.ledger.url, config.daemon.lock_name)
        self.metrics.track_held_plans(lambda: len(self.ledger.held_plans()))
        self.is_leader = False
        self.stopping = False
        self.admin_port: int | None = None
        self.history: deque[RunRecord] = deque(maxlen=50)
        self._current: asyncio.Task[RunRecord] | None = None
        self._current_info: dict[str, Any] | None = None
        self._pending: _Pending | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._scheduler: Any = None
        self._run_guard = threading.Lock()
        self._run_loop: asyncio.AbstractEventLoop | None = None
        self._run_task: asyncio.Task[RunOutcome] | None = None

    # ------------------------------------------------------------ lifecycle
    async def serve(self) -> int:
        """Run until stopped; returns the exit code (0 after a clean shutdown)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        admin = self.config.admin
        try:
            sock = _bind(admin.bind, admin.port)
        except OSError as exc:
            log.error("admin.bind_failed", bind=admin.bind, port=admin.port, error=str(exc))
            self.ledger.close()
            return EXIT_ERROR
        self.admin_port = int(sock.getsockname()[1])
        server = _AdminServer(uvicorn.Config(
            build_admin_app(self, token=admin.token, metrics_public=admin.metrics_public),
            log_config=None, access_log=False,
            lifespan="off", timeout_graceful_shutdown=2))
        server_task = asyncio.create_task(server.serve(sockets=[sock]))
        tz = self.config.daemon.timezone
        self._scheduler = AsyncIOScheduler(**({"timezone": tz} if tz else {}))
        self._scheduler.start()
        d = self.config.daemon
        log.info("daemon.started", pid=os.getpid(), admin=f"{admin.bind}:{self.admin_port}",
                 ledger=mask_url(self.config.ledger.url), interval=d.interval, cron=d.cron,
                 full_resync_cron=d.full_resync_cron,
                 full_resync_interval=d.full_resync_interval, jitter=d.jitter,
                 admin_auth=admin.token is not None)
        leadership = asyncio.create_task(self._leadership())
        await self._stop.wait()
        log.info("daemon.stopping", run_in_progress=self._current is not None)
        self.stopping = True
        self._scheduler.shutdown(wait=False)
        self._refuse_pending()
        await leadership
        await self._drain()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server_task, 5)
        await asyncio.to_thread(self.lock.release)
        self.metrics.leader.set(0)
        self.ledger.close()
        log.info("daemon.stopped")
        return EXIT_OK

    def request_stop(self) -> None:
        """Begin a clean shutdown (safe from any thread)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def _on_signal(self, sig: signal.Signals) -> None:
        assert self._stop is not None
        assert self._force is not None
        if self._stop.is_set():
            log.warning("daemon.signal_again", signal=sig.name)
            self._force.set()
            return
        log.info("daemon.signal", signal=sig.name)
        self._stop.set()

    async def _drain(self) -> None:
        """Let the run in progress finish within the grace time, else cancel it."""
        current = self._current
        if current is None:
            return
        assert self._force is not None
        force = asyncio.create_task(self._force.wait())
        await asyncio.wait({current, force}, timeout=self.config.daemon.shutdown_grace,
                           return_when=asyncio.FIRST_COMPLETED)
        force.cancel()
        if current.done():
            return
        log.warning("daemon.cancelling_run", grace=self.config.daemon.shutdown_grace)
        with self._run_guard:
            loop, task = self._run_loop, self._run_task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed just now
                loop.call_soon_threadsafe(task.cancel)
        await asyncio.wait({current}, timeout=CANCEL_WAIT)

    # ----------------------------------------------------------- leadership
    async def _leadership(self) -> None:
        assert self._stop is not None
        announced_standby = False
        poll = self.config.daemon.leader_poll
        while not self._stop.is_set():
            try:
                if not self.is_leader:
                    if await asyncio.to_thread(self.lock.try_acquire):
                        self._become_leader()
                    elif not announced_standby:
                        log.info("leader.standby", poll=poll)
                        announced_standby = True
                elif not await asyncio.to_thread(self.lock.still_held):
                    log.error("leader.lost")
                    self._step_down()
                    announced_standby = False
            except Exception:
                # e.g. the lock file's directory is unwritable: keep trying, stay alive
                log.exception("leader.error")
                if self.is_leader:
                    self._step_down()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), poll)

    def _become_leader(self) -> None:
        self.is_leader = True
        self.metrics.leader.set(1)
        log.info("leader.elected", pid=os.getpid())
        d = self.config.daemon
        tz = d.timezone
        jitter = d.jitter or None
        opts: dict[str, Any] = {"coalesce": True, "max_instances": 1,
                                "misfire_grace_time": max(1, int(d.misfire_grace)),
                                "replace_existing": True}
        if d.interval is not None:
            incremental = IntervalTrigger(seconds=d.interval, jitter=jitter, timezone=tz)
        else:
            assert d.cron is not None
            incremental = CronTrigger(**cron_fields(d.cron), timezone=tz, jitter=jitter)
        now = datetime.now(ZoneInfo(tz)) if tz else datetime.now().astimezone()
        first: dict[str, Any] = {"next_run_time": now} if d.run_on_start else {}
        self._scheduler.add_job(self._fire, incremental, args=["incremental", "schedule"],
                                id="incremental", **opts, **first)
        full: Any = None
        if d.full_resync_interval is not None:
            full = IntervalTrigger(seconds=d.full_resync_interval, jitter=jitter, timezone=tz)
        elif d.full_resync_cron is not None:
            full = CronTrigger(**cron_fields(d.full_resync_cron), timezone=tz, jitter=jitter)
        if full is not None:
            self._scheduler.add_job(self._fire, full, args=["full", "schedule"], id="full",
                                    **opts)
        if self.config.leave.enabled:  # leave is time-sensitive: its own, shorter schedule
            leave = IntervalTrigger(seconds=self.config.leave.interval, jitter=jitter,
                                    timezone=tz)
            self._scheduler.add_job(self._fire, leave, args=["leave", "schedule"], id="leave",
                                    **opts, **first)

    def _step_down(self) -> None:
        self.is_leader = False
        self.metrics.leader.set(0)
        for job in ("incremental", "full", "leave"):
            with contextlib.suppress(Exception):
                self._scheduler.remove_job(job)
        self._refuse_pending()

    # ------------------------------------------------------------- run slot
    async def _fire(self, kind: RunKind, trigger: str) -> None:
        self.trigger(kind, trigger)

    def trigger(self, kind: str, trigger: str) -> Ticket:
        """Ask for a run (event-loop thread only); see the module docstring for the rules."""
        if self.stopping:
            return Ticket("stopping")
        if not self.is_leader:
            return Ticket("standby")
        assert self._loop is not None
        run_kind: RunKind = kind if kind in ("full", "leave") else "incremental"  # type: ignore[assignment]
        waiter: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        if self._current is None:
            self._start(run_kind, trigger, [waiter])
            return Ticket("started", waiter)
        if self._pending is None:
            self._pending = _Pending(run_kind, trigger, [waiter])
            log.info("run.queued", kind=run_kind, trigger=trigger)
            return Ticket("queued", waiter)
        # A directory run wins over a pending leave run (whose next tick comes soon); a
        # leave trigger rides along with whatever is pending.
        if run_kind == "full" or (run_kind == "incremental" and self._pending.kind == "leave"):
            self._pending.kind = run_kind
        self._pending.waiters.append(waiter)
        self.metrics.coalesced.inc()
        log.info("run.coalesced", kind=run_kind, trigger=trigger, pending=self._pending.kind)
        return Ticket("coalesced", waiter)

    def _start(self, kind: RunKind, trigger: str,
               waiters: list[asyncio.Future[dict[str, Any]]]) -> None:
        self._current_info = {"kind": kind, "trigger": trigger,
                              "started_at": _iso(time.time())}
        task = asyncio.create_task(self._execute(kind, trigger))
        self._current = task

        def finished(t: asyncio.Task[RunRecord]) -> None:
            self._current = None
            self._current_info = None
            record = t.result() if not t.cancelled() and t.exception() is None else None
            for w in waiters:
                if not w.done():
                    if record is not None:
                        w.set_result(record.as_dict())
                    else:
                        w.set_exception(RunInterrupted("the run did not finish"))
                        w.exception()  # schedule triggers have no one waiting: no warning
            pending, self._pending = self._pending, None
            if pending is not None:
                if self.stopping or not self.is_leader:
                    self._refuse(pending)
                else:
                    self._start(pending.kind, pending.trigger, pending.waiters)

        task.add_done_callback(finished)

    def _refuse_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._refuse(pending)

    @staticmethod
    def _refuse(pending: _Pending) -> None:
        for w in pending.waiters:
            if not w.done():
                w.set_exception(RunInterrupted("the daemon stopped before this run"))
                w.exception()  # schedule triggers have no one waiting: no warning

    async def _execute(self, kind: RunKind, trigger: str) -> RunRecord:
        started = time.time()
        self.metrics.in_progress.set(1)
        log.info("run.starting", kind=kind, trigger=trigger)
        outcome: RunOutcome | None = None
        status = "failed"
        error: str | None = None
        try:
            outcome = await asyncio.to_thread(self._run_in_thread, kind, trigger)
            status = "ok" if outcome.exit_code == EXIT_OK else "partial"
        except PlanHeld as exc:
            status, error = "held", str(exc)
        except WriterBusy as exc:
            status, error = "skipped", str(exc)
            log.info("run.skipped", kind=kind, trigger=trigger, reason=error)
        except RunInterrupted:
            status, error = "interrupted", "cancelled at shutdown"
        except OrgsyncError as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("run.crashed", kind=kind)
            error = f"{type(exc).__name__}: {mask_urls(str(exc))}"
        finally:
            self.metrics.in_progress.set(0)
        finished = time.time()
        run_id = outcome.run_id if outcome is not None else \
            None if status == "skipped" else await self._latest_run_id(started)
        stats = getattr(outcome, "stats", None)
        self.metrics.observe_run(kind=kind, outcome=status, duration=finished - started,
                                 finished_at=finished,
                                 result=outcome.result if outcome is not None else None,
                                 stats=stats if isinstance(stats, ClientStats) else None)
        record = RunRecord(kind, trigger, status, started, finished, run_id, error)
        self.history.appendleft(record)
        log.info("run.finished", kind=kind, trigger=trigger, outcome=status, run=run_id,
                 seconds=round(finished - started, 3), error=error,
                 operations=outcome.result.summary() if outcome and outcome.result else None)
        return record

    def _run_in_thread(self, kind: RunKind, trigger: str) -> RunOutcome:
        """One run on a fresh event loop in this worker thread."""
        structlog.contextvars.bind_contextvars(kind=kind, trigger=trigger)
        loop = asyncio.new_event_loop()
        try:
            with writer.holding(self.ledger, f"daemon {kind} run ({trigger})",
                                self.config.daemon.lock_name):
                job = leave_run(self.config, self.ledger) if kind == "leave" else \
                    run_once(self.config, self.ledger, apply=True, full=kind == "full")
                task = loop.create_task(job)
                with self._run_guard:
                    self._run_loop, self._run_task = loop, task
                try:
                    return loop.run_until_complete(task)
                except asyncio.CancelledError:
                    raise RunInterrupted from None
        finally:
            with self._run_guard:
                self._run_loop, self._run_task = None, None
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _latest_run_id(self, since: float) -> str | None:
        try:
            rows = await asyncio.to_thread(self.ledger.runs, 1)
        except Exception:
            return None
        if rows and rows[0].started_at.timestamp() >= since - 1:
            return rows[0].id
        return None

    # ------------------------------------------------------ admin backend
    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready = leading, not stopping, and the last finished run is ``ok`` and recent."""
        details: dict[str, Any] = {"role": "leader" if self.is_leader else "standby"}
        if self.stopping:
            return False, {**details, "reason": "stopping"}
        if not self.is_leader:
            return False, {**details, "reason": "standby: another replica leads"}
        try:
            rows = await asyncio.to_thread(self.ledger.runs, 20)
        except Exception as exc:
            return False, {**details, "reason": f"ledger unavailable: {type(exc).__name__}"}
        last = next((r for r in rows if r.mode in DAEMON_MODES and r.status != "running"), None)
        if last is None:
            return False, {**details, "reason": "no run has finished yet"}
        age = time.time() - (last.finished_at or last.started_at).timestamp()
        details.update(last_run=last.id, last_status=last.status, age_seconds=round(age, 1))
        if last.status != "ok":
            return False, {**details, "reason": f"the last run ended {last.status}"}
        if age > self.config.daemon.max_age:
            return False, {**details, "reason": "the last run is too old"}
        return True, details

    async def runs_report(self, limit: int) -> dict[str, Any]:
        """Recent runs (ledger), the run in progress and the pending one."""
        rows = await asyncio.to_thread(self.ledger.runs, limit)
        return {"role": "leader" if self.is_leader else "standby",
                "current": self._current_info,
                "pending": self._pending.kind if self._pending else None,
                "runs": [_row(r) for r in rows],
                "daemon": [r.as_dict() for r in list(self.history)[:limit]]}

    def exposition(self) -> tuple[bytes, str]:
        """(Prometheus exposition, content type) for ``/metrics``."""
        return self.metrics.render(), CONTENT_TYPE


def run_daemon(config: Config) -> int:
    """``orgsync daemon``: serve until SIGTERM/SIGINT; returns the exit code."""
    return asyncio.run(Daemon(config).serve())


# ------------------------------------------------------------------ helpers
class _AdminServer(uvicorn.Server):
    """uvicorn without its own signal handling: it would take SIGTERM/SIGINT and raise
    them again after its shutdown, while the daemon owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket for the admin endpoint (errors surface here, not in uvicorn)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _row(r: RunRow) -> dict[str, Any]:
    import json

    return {"id": r.id, "mode": r.mode, "status": r.status, "plan_id": r.plan_id,
            "started_at": r.started_at.isoformat(timespec="seconds"),
            "finished_at": r.finished_at.isoformat(timespec="seconds") if r.finished_at else None,
            "summary": json.loads(r.summary or "{}"), "error": r.error}


