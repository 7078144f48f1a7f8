"""The code gates: ruff and mypy (strict on orgsync/ and connectors/) find nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("tool", [
    ["ruff", "check", "--no-cache", "orgsync", "connectors", "tests"],
    ["mypy"],  # packages and strictness from pyproject.toml
])
def test_gate_is_clean(tool: list[str]) -> None:
    """Any finding fails the suite, with the tool's own report as the failure text."""
    done = subprocess.run([sys.executable, "-m", *tool], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
