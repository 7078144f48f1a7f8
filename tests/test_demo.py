"""The README's first command: the demo runs to the end and shows each step's outcome."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from orgsync.demo import run_demo


def test_demo_runs_all_four_steps(tmp_path: Path) -> None:
    """Week 1 applies the sample company, week 2 its changes, then nothing, then grace deletes."""
    buf = io.StringIO()
    code = run_demo(Console(file=buf, width=120), rate_scale=10.0, workdir=tmp_path)
    text = buf.getvalue()
    assert code == 0
    # 34 departments + 34 leader links + 320 people (manager links in the creates) + 10
    # dotted-line links (second pass)
    assert "Applied: 398 done, 0 failed, 0 skipped" in text
    assert "Feishu now holds 34 departments and 323 users (3 frozen leavers in their grace period)." \
        in text
    assert "No changes. Feishu matches the source." in text
    assert "Summary: user.delete=3" in text
    assert text.rstrip().count("Feishu now holds 34 departments and 320 users.") == 2
    # The custom field (custom.工位电话, defined in the demo tenant) is read back from Feishu
    # for everyone, in the creates (no operation of its own: the counts above are unchanged).
    assert text.count("320 of them with a 工位电话 (a custom profile field).") == 2
    assert text.count("323 of them with a 工位电话 (a custom profile field).") == 2
    assert "custom_attrs: {'工位电话': '" in text  # week 2's joiners, in the plan
    assert (tmp_path / "week1" / "employees.csv").exists()
    # Someone's leave appears in Feishu, then, cancelled, goes.
    shows = [line for line in text.splitlines() if "'s calendar and profile:" in line]
    assert len(shows) == 2
    assert "请假 — 请假：年假 / On leave: 年假 (" in shows[0]
    assert shows[1].endswith("'s calendar and profile: no leave mark")
    assert "Leave plan: leave.create=1" in text
    assert "Leave plan: leave.delete=1" in text
