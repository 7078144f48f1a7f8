"""What the benchmarks share: the run context, config files, timed subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orgsync.bench.sandbox_host import SandboxProcess

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(slots=True)
class Context:
    """One suite run: its scratch directory and the sandbox process all benchmarks share."""

    workdir: Path
    sandbox: SandboxProcess


@dataclass(frozen=True, slots=True)
class Timed:
    """A finished subprocess: wall seconds, peak resident memory, exit code, output."""

    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def child_env() -> dict[str, str]:
    """The environment for orgsync subprocesses: the repo on ``PYTHONPATH``, no colour."""
    env = dict(os.environ)
    root = str(REPO_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("NO_COLOR", "1")
    env["COLUMNS"] = "160"
    return env


def compile_bytecode() -> bool:
    """Write the project's byte-code (``__pycache__``), as pip does when it installs a package.

    Python writes it on a first import too, unless PYTHONDONTWRITEBYTECODE is set
    (as on these machines): an editable install then compiles every orgsync module
    in every process, which is not what a deployed ``orgsync plan`` costs. True
    when everything compiled.
    """
    import compileall

    return all([compileall.compile_dir(REPO_ROOT / package, quiet=1)
                for package in ("orgsync", "connectors")])


def orgsync_command() -> list[str]:
    """How to run ``orgsync``: the console script next to this interpreter, else ``-m``."""
    script = Path(sys.executable).parent / "orgsync"
    if script.exists():
        return [str(script)]
    found = shutil.which("orgsync")
    if found and Path(found).parent == Path(sys.executable).parent:
        return [found]
    return [sys.executable, "-m", "orgsync.cli"]


def run_timed(cmd: list[str], *, timeout: float = 600.0) -> Timed:
    """Run ``cmd`` to completion; wall time from spawn to exit, peak RSS of that child alone.

    Output goes to files, so that reading it costs the child nothing. The peak is the
    child's own high-water mark (``VmHWM``), read while it runs: ``ru_maxrss`` also counts
    the memory of this process, which the child shares until its ``exec`` (a bench that
    holds a large org or a large output made every later child look as large).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=child_env(),  # noqa: S603
                                cwd=REPO_ROOT)
        deadline = start + timeout
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _high_water_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    # ru_maxrss (kilobytes on Linux) only where /proc cannot be read
    return Timed(seconds, (peak_kb or usage.ru_maxrss) / 1024, proc.returncode, stdout, stderr)


def _high_water_kb(pid: int) -> int:
    """The peak resident memory of a running process (``VmHWM``, kB); 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def write_config(path: Path, *, departments: Path, employees: Path, ledger: Path,
                 base_url: str, app_id: str, app_secret: str, rate_limits: bool = True,
                 concurrency: int | None = None, sync: dict[str, Any] | None = None,
                 safety: Mapping[str, Any] | None = None,
                 groups: Mapping[str, Any] | None = None) -> Path:
    """A config file for a CSV source, a SQLite ledger and a (sandbox) Feishu; ``sync``:
    more keys of the ``sync`` section, ``safety`` more of the ``safety`` section,
    ``groups`` the ``groups.define`` section."""
    data: dict[str, Any] = {
        "version": 1,
        "feishu": {"base_url": base_url, "app_id": app_id, "app_secret": app_secret,
                   "rate_limits": rate_limits},
        "source": {"type": "csv", "departments": str(departments), "employees": str(employees)},
        "ledger": {"url": f"sqlite:///{ledger}"},
        "logging": {"level": "warning"},
        # The guards are still measured on every plan, but the benchmarks' day of churn
        # (1 % of 10⁵ people, a fifth of them leavers) must not hold the plan they time.
        "safety": {"max_user_removals": 1_000_000, "churn_floor": 1_000_000},
    }
    if concurrency is not None or sync:
        data["sync"] = {**({"concurrency": concurrency} if concurrency is not None else {}),
                        **(sync or {})}
    if safety is not None:
        data["safety"] = {**data["safety"], **safety}
    if groups is not None:
        data["groups"] = {"define": dict(groups)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def median(values: list[float]) -> float:
    """The median (the lower one of the middle two)."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]
