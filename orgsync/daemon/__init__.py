"""The daemon wing: what ``orgsync daemon`` adds around the run (:mod:`orgsync.runner`).

* :mod:`~orgsync.daemon.service` — schedules runs (interval / cron, nightly resyncs), one
  at a time, each under the writer lock; clean shutdown on SIGTERM;
* :mod:`~orgsync.daemon.leader` — leader election among replicas sharing a ledger;
* :mod:`~orgsync.daemon.admin` — the token-protected admin endpoint (health, runs, resync);
* :mod:`~orgsync.daemon.metrics` — the Prometheus metrics it serves.
"""
