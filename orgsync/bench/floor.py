"""The first sync's plan with the planning left out: a floor under plan_growth's figures.

``python -m orgsync.bench.floor CONFIG FORMAT [--hash]`` does what ``orgsync plan -f FORMAT
-c CONFIG`` does before and after its plan, with the same code: the command's imports, the
config, the ledger, the source's read and validation (:func:`orgsync.runner.read_raw`,
:func:`~orgsync.runner.read_source`, the collector paused as a run pauses it) and the
renderer (:func:`orgsync.render.render` to standard output). The plan in between is only
each active person's ``user.create`` made straight from the record, in key order: its
request body and mirror (a renderer reads both), and nothing else — no department, no
dependency, no diff, no order, no Feishu call, no ledger row and, without ``--hash``, no
checksum (with it, :attr:`~orgsync.plan.Plan.checksum` as ``orgsync plan`` computes it).

Everything it leaves out ``orgsync plan`` must also do, so its wall time is a lower bound
on the plan's: the least any plan of this design can cost, measured in the same run as
the yardstick. Not a product command; the output is only comparable in size.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    """Run the floor for ``argv`` (CONFIG FORMAT [--hash]); stage seconds go to stderr."""
    start = time.perf_counter()
    from orgsync import gcpause

    with gcpause.paused_gc():  # the plan command's imports, paused as it pauses them
        import orgsync.cli  # noqa: F401
        from orgsync import render
        from orgsync.config import load_config
        from orgsync.feishu.schema import user_create_body
        from orgsync.identity import feishu_department_id, feishu_user_id
        from orgsync.ledger import Ledger
        from orgsync.names import Names
        from orgsync.plan import CreatedChanges, Operation, OpKind, Plan, op_id
        from orgsync.runner import read_raw, read_source
        from orgsync.state import DirectoryState

    config, fmt, *rest = argv
    cfg = load_config(config)
    ledger = Ledger(cfg.ledger.url)
    with gcpause.paused_gc(freeze=True):
        data = read_source(cfg, ledger, raw=read_raw(cfg))
        read = time.perf_counter()
        active = data.snapshot.active_employees()
        creates = []
        kind = OpKind.USER_CREATE
        for key in sorted(active):
            e = active[key]
            mirror = e.fields()
            fid = feishu_user_id(key)
            body = user_create_body(
                mirror, [feishu_department_id(d) for d in e.department_keys], user_id=fid,
                manager_id=feishu_user_id(e.manager_key) if e.manager_key else None,
                catalogs=data.catalogs, attrs=data.custom_attrs)
            creates.append(Operation(op_id(kind, key), kind, key, fid, body,
                                     CreatedChanges(mirror, "status"), "new in source", (),
                                     mirror, e.name))
        plan = Plan(tuple(creates), names=Names(data.snapshot, DirectoryState()))
        made = time.perf_counter()
        if "--hash" not in rest:
            plan.__dict__["checksum"] = "0" * 64  # the cached property, left uncomputed
        _ = plan.plan_id
        hashed = time.perf_counter()
    render.render(plan, fmt, sys.stdout)
    sys.stdout.flush()
    done = time.perf_counter()
    print(f"start and read {read - start:.3f} s, creates {made - read:.3f} s, "
          f"hash {hashed - made:.3f} s, render {done - hashed:.3f} s", file=sys.stderr)
    ledger.close()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # as the CLI: the records go with the process, not one by one
