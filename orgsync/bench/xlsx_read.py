"""The xlsx source against the CSV source: the same org read from both (issue 24).

A synthetic org is written as the native CSV pair and as the same cells in two
workbooks (shared strings, as Excel writes them); each is read by its connector,
in a child process of its own so that its peak memory is its own. Target: the
workbooks read within 3× the CSV's time.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from orgsync.bench.common import Context
from orgsync.bench.report import BenchResult, Figure
from orgsync.bench.sizes import Sizes
from orgsync.synth import generate_org, write_csv

NAME = "xlsx_read"
_READ = r"""
import json, re, sys, time
from pathlib import Path
def rss(field):  # this process's own figures (ru_maxrss keeps the parent's across exec)
    status = Path("/proc/self/status").read_text()
    return int(re.search(field + r":\s+(\d+)", status).group(1)) / 1024
from connectors.registry import build_connector
from orgsync.config import SourceConfig
kind, work = sys.argv[1], Path(sys.argv[2])
options = {"departments": f"departments.{kind}", "employees": f"employees.{kind}"}
connector = build_connector(SourceConfig(type=kind, options=options, base_dir=work,
                                         file="<bench>"))
before = rss("VmRSS")
start = time.perf_counter()
data = connector.read()
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "people": len(data.snapshot.employees),
                  "issues": len(data.issues), "peak_mb": rss("VmHWM") - before}))
"""


def write_workbooks(directory: Path) -> None:
    """``departments.xlsx`` and ``employees.xlsx`` holding the cells of the CSV pair."""
    import openpyxl  # the test extra: only the bench and the tests write workbooks

    for name in ("departments", "employees"):
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        assert sheet is not None
        with (directory / f"{name}.csv").open(encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                sheet.append(row)
        workbook.save(directory / f"{name}.xlsx")


def _read(kind: str, work: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _READ, kind, str(work)], capture_output=True,  # noqa: S603
                          text=True, check=True, timeout=600)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(sizes: Sizes, ctx: Context) -> BenchResult:
    """Read the org as CSV and as xlsx, three times each; the median ratio of the times."""
    work = ctx.workdir / NAME
    work.mkdir(parents=True, exist_ok=True)
    org = generate_org(seed=24, employees=sizes.xlsx_rows,
                       departments=max(2, sizes.xlsx_rows // 50))
    write_csv(org, work)
    write_workbooks(work)
    # Back-to-back pairs, so that both reads of a pair meet the same machine load; the
    # median pair's ratio is the figure.
    pairs = sorted(((_read("csv", work), _read("xlsx", work)) for _ in range(3)),
                   key=lambda p: p[1]["seconds"] / p[0]["seconds"])
    csv_read, xlsx_read = pairs[1]
    same = csv_read["people"] == xlsx_read["people"] == len(org.employees) and \
        csv_read["issues"] == xlsx_read["issues"] == 0
    ratio = xlsx_read["seconds"] / csv_read["seconds"]
    result = BenchResult(NAME, details={"csv": csv_read, "xlsx": xlsx_read,
                                        "rows": sizes.xlsx_rows})
    result.figures = [
        Figure(NAME, f"read {sizes.xlsx_rows:,} rows: xlsx time ÷ CSV time", ratio, "×", 3.0,
               "<=", f"xlsx {xlsx_read['seconds']:.2f} s, CSV {csv_read['seconds']:.2f} s"),
        Figure(NAME, "xlsx read: same people as the CSV, no issue", 1.0 if same else 0.0, "",
               1, "=="),
        Figure(NAME, "peak memory of the xlsx read", xlsx_read["peak_mb"], "MB",
               note=f"CSV read: {csv_read['peak_mb']:.0f} MB"),
    ]
    return result
