"""Benchmark figures and the report files: ``bench.json`` and ``bench.md``.

A :class:`Figure` is one measured number with its target. ``ratio`` is the value
divided by the target's threshold, so a "≤" target passes at a ratio ≤ 1 and a
"≥" target at a ratio ≥ 1. Informational figures have no threshold and no verdict.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Compare = Literal["<=", ">=", "=="]

BENCHMARKS = ("plan_at_scale", "plan_growth", "apply_ceiling", "initial_apply", "resync_read",
              "headroom", "xlsx_read", "groups")
"""Every benchmark of the suite, in run order (the report lists each one)."""


@dataclass(slots=True)
class Figure:
    """One measured number: what, how much, against which target, and the verdict."""

    benchmark: str
    name: str
    value: float | None
    unit: str
    threshold: float | None = None
    compare: Compare | None = None
    note: str = ""

    @property
    def target(self) -> str:
        """The target as text (``"≤ 2.5 s"``), or ``"—"`` for an informational figure."""
        if self.threshold is None or self.compare is None:
            return "—"
        sign = {"<=": "≤", ">=": "≥", "==": "="}[self.compare]
        return f"{sign} {_num(self.threshold)} {self.unit}".rstrip()

    @property
    def ratio(self) -> float | None:
        """``value / threshold`` (``None`` without a threshold or for a zero threshold)."""
        if self.value is None or not self.threshold:
            return None
        return self.value / self.threshold

    @property
    def passed(self) -> bool | None:
        """The verdict; ``None`` when informational or not measured."""
        if self.value is None or self.threshold is None or self.compare is None:
            return None
        if self.compare == "<=":
            return self.value <= self.threshold
        if self.compare == ">=":
            return self.value >= self.threshold
        return self.value == self.threshold

    def as_dict(self) -> dict[str, Any]:
        """JSON form, with the derived target, ratio and verdict."""
        d = asdict(self)
        d.update(target=self.target, ratio=_round(self.ratio), passed=self.passed,
                 value=_round(self.value))
        return d


@dataclass(slots=True)
class BenchResult:
    """One benchmark's figures, details for the JSON report, and its own wall time."""

    benchmark: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


def machine_info() -> dict[str, Any]:
    """The machine the figures were taken on (CPUs, Python, platform, memory, load)."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "memory_mb": _memory_mb(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg")
        else None,
        "git_commit": _git_commit(),
        "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
    }
    return info


def write_report(out: Path, mode: str, results: Sequence[BenchResult],
                 machine: dict[str, Any], started: float) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.md`` into ``out``; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "mode": mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine,
        "benchmarks": {r.benchmark: {"seconds": round(r.seconds, 1), "error": r.error,
                                     "figures": [f.as_dict() for f in r.figures],
                                     "details": r.details} for r in results},
    }
    json_path = out / "bench.json"
    md_path = out / "bench.md"
    json_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n",
                         encoding="utf-8")
    md_path.write_text(markdown(mode, results, machine), encoding="utf-8")
    return json_path, md_path


def markdown(mode: str, results: Sequence[BenchResult], machine: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per figure) with a machine line."""
    lines = [
        f"### orgsync benchmarks ({mode} mode)",
        "",
        f"Machine: {machine.get('cpu_count')} CPUs ({machine.get('cpu_model') or 'unknown'}), "
        f"{machine.get('memory_mb')} MB, Python {machine.get('python')}, "
        f"{machine.get('platform')}; load average at start {machine.get('load_average')}"
        + ("; orgsync's byte-code compiled first, as an installed package has it."
           if machine.get("bytecode_compiled") else "."),
        "",
        "| benchmark | figure | measured | target | ratio | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.benchmark} | (failed) | {_md(r.error)} | | | error |")
        for f in r.figures:
            value = "—" if f.value is None else f"{_num(f.value)} {f.unit}".rstrip()
            ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
            verdict = {True: "pass", False: "**FAIL**", None: ""}[f.passed]
            name = f.name + (f" ({f.note})" if f.note else "")
            lines.append(f"| {r.benchmark} | {_md(name)} | {value} | {f.target} | {ratio} "
                         f"| {verdict} |")
    lines.append("")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _num(v: float) -> str:
    if v == int(v) and abs(v) >= 10:
        return f"{int(v)}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - read-only
                              capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parents[2], check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None
