"""A smoke run of the benchmark suite: it runs end to end and reports every benchmark.

Speed is not asserted here (the machine may be busy); ``python -m orgsync.bench
--full`` takes the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orgsync.bench.report import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output directory of one quick run at a tenth of the quick sizes."""
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "orgsync.bench", "--quick", "--scale", "0.1", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.bench
def test_quick_run_writes_json_with_every_benchmark(report: Path) -> None:
    """bench.json names the mode and machine and holds figures for every benchmark, none failed."""
    doc = json.loads((report / "bench.json").read_text(encoding="utf-8"))
    assert doc["mode"] == "quick"
    assert doc["machine"]["cpu_count"] >= 1
    assert doc["machine"]["python"] == sys.version.split()[0]
    assert set(doc["benchmarks"]) == set(BENCHMARKS)
    for name, bench in doc["benchmarks"].items():
        assert bench["error"] is None, f"{name}: {bench['error']}"
        assert bench["figures"], name
        for figure in bench["figures"]:
            assert {"name", "value", "unit", "target", "ratio", "passed"} <= figure.keys()


@pytest.mark.bench
def test_quick_run_measures_what_the_targets_need(report: Path) -> None:
    """Every targeted figure got a value, and the correctness figures hold even in a smoke run."""
    doc = json.loads((report / "bench.json").read_text(encoding="utf-8"))
    figures = {f["name"]: f for b in doc["benchmarks"].values() for f in b["figures"]}
    assert all(f["value"] is not None for f in figures.values() if f["target"] != "—")
    assert figures["no-change apply: API calls"]["value"] == 0
    assert figures["pages read twice"]["value"] == 0
    assert figures["read: everything read back"]["value"] == 1
    # a first group sync writes one create per group plus ⌈members / 100⌉ adds; then nothing
    assert figures["first group sync writes"]["passed"] is True
    assert figures["incremental plan: group operations"]["value"] == 0
    # the first sync applied by `orgsync apply` in its own process: every create made
    assert figures["initial apply: creates made of those planned"]["passed"] is True
    assert figures["initial apply: peak RSS (orgsync apply --yes, its own process)"]["value"] > 0
    # the plan at scale is timed again with 200 groups defined and mirrored
    assert figures["plan end to end with 200 groups, wall (median)"]["value"] > 0
    assert figures["plan end to end: 200 groups' delta"]["target"] == "—"


@pytest.mark.bench
def test_quick_run_writes_a_markdown_table(report: Path) -> None:
    """bench.md is a table with a row for every benchmark and the machine line."""
    text = (report / "bench.md").read_text(encoding="utf-8")
    assert "| benchmark | figure | measured | target | ratio | result |" in text
    assert "Machine:" in text
    for name in BENCHMARKS:
        assert f"| {name} |" in text


def test_the_floor_renders_each_active_person_as_a_create(tmp_path: Path) -> None:
    """``orgsync.bench.floor`` reads the source with the product's code and renders one
    ``user.create`` per active person (request body and mirror made), and with ``--hash``
    the plan's checksum; nothing else is planned and Feishu is never called (the config
    names a port nothing listens on)."""
    from orgsync.bench.common import write_config
    from orgsync.synth import generate_org, write_csv

    org = generate_org(seed=3, employees=60, departments=6)
    departments, employees = write_csv(org, tmp_path / "csv")
    config = write_config(tmp_path / "orgsync.yaml", departments=departments,
                          employees=employees, ledger=tmp_path / "ledger.db",
                          base_url="http://127.0.0.1:9", app_id="cli_floor", app_secret="s")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    active = sorted(org.active_employees())

    def floor(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "orgsync.bench.floor", str(config), *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    text = floor("text")
    assert text.stdout.startswith(f"Plan {'0' * 12} — {len(active)} operations\n")
    assert "department." not in text.stdout
    assert "hash 0.000 s" in text.stderr
    doc = json.loads(floor("json", "--hash").stdout)
    ops = doc["operations"]
    assert [op["key"] for op in ops] == active
    assert {op["kind"] for op in ops} == {"user.create"}
    assert all(op["payload"]["department_ids"] and op["mirror"]["name"] for op in ops)
    assert doc["plan_id"] != "0" * 12
    assert doc["checksum"].startswith(doc["plan_id"])
