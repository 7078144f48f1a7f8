"""The ledger's storage failing under a real ``orgsync`` process: a full disk (a small tmpfs)
during apply, and a ledger file damaged by random bytes. Each ends with the ledger's exit
code and one message saying what happened and what to do, never a traceback; after a full
disk is freed, the next run converges without duplicates."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orgsync.errors import EXIT_CHANGES, EXIT_LEDGER, EXIT_OK
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv

ORG = generate_org(employees=40, departments=6, levels=3)
ROOT = Path(__file__).resolve().parent.parent


def write_config(sandbox: SandboxServer, tmp_path: Path, ledger: Path) -> Path:
    """A config syncing ORG (CSV in ``tmp_path/src``) into ``sandbox``, its ledger at ``ledger``."""
    sandbox.configure(rate_scale=10.0)
    write_csv(ORG, tmp_path / "src")
    path = tmp_path / "orgsync.yaml"
    path.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": sandbox.base_url, "app_id": sandbox.config.app_id,
                   "app_secret": "${LEDGER_TEST_SECRET}", "rate_scale": 10.0},
        "source": {"type": "csv", "departments": "src/departments.csv",
                   "employees": "src/employees.csv"},
        "ledger": {"url": f"sqlite:///{ledger}"},
    }), encoding="utf-8")
    return path


def orgsync(conf: Path, sandbox: SandboxServer, *args: str) -> tuple[int, str]:
    """``orgsync ARGS -c CONF`` as a process: (exit code, stdout and stderr)."""
    env = {**os.environ, "LEDGER_TEST_SECRET": sandbox.config.app_secret,
           "PYTHONPATH": str(ROOT), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "orgsync.cli", *args, "-c", str(conf)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    return done.returncode, done.stdout + done.stderr


def feishu_user_ids(sandbox: SandboxServer) -> list[str]:
    """The user_id of every user the sandbox holds (duplicates would show twice)."""
    state = httpx.get(f"{sandbox.base_url}/_sandbox/state", timeout=10,
                      headers={"Authorization": f"Bearer {sandbox.config.app_secret}"}).json()
    return sorted(u["user_id"] for u in state["data"]["users"])


@pytest.fixture(name="small_disk")
def _small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (the sandbox this suite runs in is root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (run the suite as root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` until only about ``leave`` bytes are free; the filler file."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def test_a_full_disk_during_apply_is_a_clear_error_and_the_next_run_converges(
        sandbox: SandboxServer, tmp_path: Path, small_disk: Path) -> None:
    """The disk under the ledger fills up in the middle of an apply: exit 8 with what
    happened and what to do; once space is freed, the next apply finishes the job and
    Feishu holds every employee exactly once."""
    conf = write_config(sandbox, tmp_path, small_disk / "ledger.db")
    assert orgsync(conf, sandbox, "status")[0] == EXIT_OK  # the ledger exists, schema and all
    filler = fill(small_disk, leave=512 * 1024)

    code, output = orgsync(conf, sandbox, "apply", "--yes")
    assert "Traceback" not in output, output[-3000:]
    assert code == EXIT_LEDGER, output[-3000:]
    assert f"error: the disk holding the ledger at sqlite:///{small_disk}/ledger.db is full " \
           "(database or disk is full); the run stopped and its last ledger write was rolled " \
           "back. Free space on that disk, then run again: the next run settles what this one " \
           "left" in " ".join(output.split())
    partly = feishu_user_ids(sandbox)
    assert 0 < len(partly) < len(ORG.employees)  # it stopped half-way

    filler.unlink()
    code, output = orgsync(conf, sandbox, "apply", "--yes")
    assert code == EXIT_OK, output[-3000:]
    assert feishu_user_ids(sandbox) == sorted(ORG.employees)
    code, output = orgsync(conf, sandbox, "plan", "--detailed-exitcode")
    assert (code, "No changes." in output) == (EXIT_OK, True), output[-3000:]


def corrupt(path: Path, seed: int) -> None:
    """Overwrite 8 runs of 64 random bytes at random offsets (seeded) of ``path``."""
    rng = random.Random(seed)
    size = path.stat().st_size
    with path.open("r+b") as f:
        for _ in range(8):
            f.seek(rng.randrange(size))
            f.write(rng.randbytes(64))


def test_a_damaged_ledger_is_a_clear_error_naming_the_remedy(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """Seven seeded random-byte corruptions of a real ledger, and one with its header gone:
    every command run on them either works or exits 8 saying the ledger is damaged and to
    restore a backup, never with a traceback."""
    good = tmp_path / "good.db"
    conf = write_config(sandbox, tmp_path, good)
    assert orgsync(conf, sandbox, "apply", "--yes")[0] == EXIT_OK
    damaged = tmp_path / "damaged.db"
    conf = write_config(sandbox, tmp_path, damaged)
    seen: dict[str, int] = {}
    for seed in [*range(7), -1]:
        shutil.copyfile(good, damaged)
        if seed < 0:
            with damaged.open("r+b") as f:
                f.write(b"\0" * 100)
        else:
            corrupt(damaged, seed)
        code, output = orgsync(conf, sandbox, "plan", "--detailed-exitcode")
        assert "Traceback" not in output, output[-3000:]
        text = " ".join(output.split())
        if code in (EXIT_OK, EXIT_CHANGES):  # the bytes hit nothing SQLite reads here
            seen["readable"] = seen.get("readable", 0) + 1
            continue
        assert code == EXIT_LEDGER, output[-3000:]
        assert f"error: the ledger at sqlite:///{damaged} is damaged (" in text
        assert ("); orgsync cannot repair it. Stop every orgsync that uses it, keep the damaged "
                "file for inspection, and restore the ledger from your latest backup, or start a "
                "new ledger and run 'orgsync resync'") in text
        detail = text.split(" is damaged (", 1)[1].split(");", 1)[0]
        seen[detail] = seen.get(detail, 0) + 1
    assert "file is not a database" in seen
    # Which detail SQLite reports depends on where the random bytes land in the file's layout;
    # at least one of the seven must be caught as damage, whatever it is named.
    assert sum(n for k, n in seen.items()
               if k not in ("readable", "file is not a database")) >= 1, seen
