"""``python -m orgsync.bench [--quick|--full] [--out DIR] [--only NAME ...]``.

Runs the benchmark suite and writes ``bench.json`` and ``bench.md`` into
``--out`` (default ``bench-results/``). Quick mode is a smoke run with small
sizes; full mode takes the figures of issues 7 and 20 (about forty minutes). The exit
code is 0 when every benchmark ran, 1 when one raised (failed targets are
reported, not fatal: the machine may be busy).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from pathlib import Path

from orgsync.bench.common import Context, compile_bytecode
from orgsync.bench.report import BENCHMARKS, BenchResult, machine_info, markdown, write_report
from orgsync.bench.sandbox_host import SandboxProcess
from orgsync.bench.sizes import FULL, QUICK


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen benchmarks, write the report; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m orgsync.bench",
                                     description="Run orgsync's benchmark suite.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (smoke run; default)")
    mode.add_argument("--full", action="store_true", help="the sizes of issues 7 and 20")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="directory for bench.json and bench.md")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every size by this (e.g. 0.2 for a faster smoke run)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch directory (default: a fresh temporary one)")
    args = parser.parse_args(argv)
    sizes = FULL if args.full else QUICK
    if args.scale != 1.0:
        sizes = sizes.scaled(args.scale)
    chosen = [b for b in BENCHMARKS if not args.only or b in args.only]

    from orgsync import logs

    logs.configure(level="warning", stream=sys.stderr)  # in-process runs log like a quiet CLI
    started = time.time()
    machine = machine_info()
    machine["bytecode_compiled"] = compile_bytecode()
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="orgsync-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        with SandboxProcess() as sandbox:
            ctx = Context(workdir=workdir, sandbox=sandbox)
            for name in chosen:
                print(f"[bench] {name} ({sizes.mode}) …", file=sys.stderr, flush=True)
                mark = time.perf_counter()
                try:
                    module = importlib.import_module(f"orgsync.bench.{_MODULES[name]}")
                    result: BenchResult = module.run(sizes, ctx)
                except Exception as exc:
                    traceback.print_exc()
                    result = BenchResult(name, error=f"{type(exc).__name__}: {exc}")
                result.seconds = time.perf_counter() - mark
                results.append(result)
                print(f"[bench] {name} done in {result.seconds:.1f} s", file=sys.stderr,
                      flush=True)
    json_path, md_path = write_report(args.out, sizes.mode, results, machine, started)
    print(markdown(sizes.mode, results, machine))
    print(f"[bench] wrote {json_path} and {md_path}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


_MODULES = {"plan_at_scale": "plan_scale", "plan_growth": "plan_growth",
            "apply_ceiling": "apply_ceiling", "initial_apply": "initial_apply",
            "resync_read": "resync_read", "headroom": "headroom", "xlsx_read": "xlsx_read",
            "groups": "groups_scale"}


if __name__ == "__main__":
    sys.exit(main())
