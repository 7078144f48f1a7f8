"""The benchmark suite of issue 7: ``python -m orgsync.bench [--quick|--full] [--out DIR]``.

One module per benchmark, each a ``run(sizes, ctx) -> list[Figure]``:

* :mod:`orgsync.bench.plan_scale` — ``orgsync plan`` end to end on a large, already
  applied org with a share of employees changed; and a no-change apply that must
  make zero API calls;
* :mod:`orgsync.bench.apply_ceiling` — user creates and department moves against
  the sandbox enforcing the documented limits with injected latency, next to a
  naive sequential loop with the official SDK;
* :mod:`orgsync.bench.resync_read` — the full-resync read of a seeded sandbox;
* :mod:`orgsync.bench.headroom` — the executor with limits and latency off, and
  the resident memory of an idle daemon.

Shared parts: :mod:`~orgsync.bench.sizes` (quick and full sizes),
:mod:`~orgsync.bench.report` (figures, JSON and Markdown), :mod:`~orgsync.bench.mirror`
(bulk-fills the ledger's mirror), :mod:`~orgsync.bench.churn` (a share of employees
changed), :mod:`~orgsync.bench.seed` (an org put into the sandbox and the mirror
without API calls), :mod:`~orgsync.bench.applying` (one timed apply),
:mod:`~orgsync.bench.sandbox_host` (the sandbox in its own process),
:mod:`~orgsync.bench.rates` (what the documented limits allow) and
:mod:`~orgsync.bench.common` (configs, timed subprocesses).

Benchmarks are not part of the normal test run; ``tests/test_bench_smoke.py``
runs the quick mode with tiny sizes.
"""

from __future__ import annotations
