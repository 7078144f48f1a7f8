"""Prometheus metrics of one daemon, on a registry of its own (never the global one).

=======================================================  ==================================
``orgsync_runs_total{kind, outcome}``                     runs by kind (incremental, full) and
                                                          outcome (ok, partial, held, failed,
                                                          interrupted)
``orgsync_operations_total{kind, status}``                Feishu writes by operation kind and
                                                          status (done, failed, skipped)
``orgsync_feishu_errors_total{code}``                     errors Feishu calls ended with, by code
``orgsync_feishu_rate_limited_total{form}``               rate-limit answers (429, 99991400 …)
``orgsync_rate_limit_wait_seconds_total``                 time calls waited on the rate limiter
``orgsync_run_duration_seconds{kind}``                    run durations (histogram)
``orgsync_last_success_timestamp_seconds``                end of the last run that succeeded
``orgsync_last_run_timestamp_seconds``                    end of the last run, however it ended
``orgsync_run_in_progress``                               1 while a run is going
``orgsync_runs_coalesced_total``                          triggers folded into a pending run
``orgsync_held_plans``                                    plans held for approval (from the ledger)
``orgsync_leader``                                        1 while this process is the leader
=======================================================  ==================================

Labels are bounded: operation kinds, statuses and Feishu codes, never ids or names.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from orgsync.executor import ApplyResult
from orgsync.feishu.client import ClientStats

CONTENT_TYPE = CONTENT_TYPE_LATEST
SUCCESS = frozenset({"ok"})
"""Outcomes that count as a success for ``orgsync_last_success_timestamp_seconds``."""


class DaemonMetrics:
    """The daemon's metrics; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("orgsync_runs", "Runs by kind and outcome.", ["kind", "outcome"],
                            registry=r)
        self.operations = Counter("orgsync_operations", "Feishu writes by kind and status.",
                                  ["kind", "status"], registry=r)
        self.feishu_errors = Counter("orgsync_feishu_errors",
                                     "Errors Feishu calls ended with, by Feishu code.", ["code"],
                                     registry=r)
        self.rate_limited = Counter("orgsync_feishu_rate_limited",
                                    "Rate-limit answers from Feishu, by form.", ["form"],
                                    registry=r)
        self.rate_limit_wait = Counter("orgsync_rate_limit_wait_seconds",
                                       "Seconds Feishu calls waited on the rate limiter.",
                                       registry=r)
        self.duration = Histogram("orgsync_run_duration_seconds", "Run durations.", ["kind"],
                                  buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200),
                                  registry=r)
        self.last_success = Gauge("orgsync_last_success_timestamp_seconds",
                                  "Unix time the last successful run ended.", registry=r)
        self.last_run = Gauge("orgsync_last_run_timestamp_seconds",
                              "Unix time the last run ended.", registry=r)
        self.in_progress = Gauge("orgsync_run_in_progress", "1 while a run is going.",
                                 registry=r)
        self.coalesced = Counter("orgsync_runs_coalesced",
                                 "Triggers folded into an already pending run.", registry=r)
        self.held_plans = Gauge("orgsync_held_plans", "Plans held for approval.", registry=r)
        self.leader = Gauge("orgsync_leader", "1 while this process is the leader.", registry=r)
        for kind in ("incremental", "full"):
            for outcome in ("ok", "partial", "held", "failed", "interrupted"):
                self.runs.labels(kind, outcome)

    def observe_run(self, *, kind: str, outcome: str, duration: float, finished_at: float,
                    result: ApplyResult | None = None, stats: ClientStats | None = None) -> None:
        """Count one finished run, its operations and (when known) its client's counters."""
        self.runs.labels(kind, outcome).inc()
        self.duration.labels(kind).observe(max(0.0, duration))
        self.last_run.set(finished_at)
        if outcome in SUCCESS:
            self.last_success.set(finished_at)
        if result is not None:
            for r in result.results:
                self.operations.labels(r.op.kind.value, r.status).inc()
        if stats is not None:
            for code, n in stats.errors.items():
                self.feishu_errors.labels(str(code)).inc(n)
            for form, n in stats.rate_limited.items():
                self.rate_limited.labels(form).inc(n)
            self.rate_limit_wait.inc(max(0.0, stats.limiter_wait_seconds))
        elif result is not None:
            # without the client's counters, the failed operations' codes are what we know
            for r in result.failed:
                self.feishu_errors.labels(str(r.code if r.code is not None else -1)).inc()

    def track_held_plans(self, count: Callable[[], int]) -> None:
        """Read the held-plan count from ``count`` at every scrape (NaN when it fails)."""
        def read() -> float:
            try:
                return float(count())
            except Exception:
                return math.nan

        self.held_plans.set_function(read)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
