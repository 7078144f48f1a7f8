"""Selecting the long torture tests: ``TORTURE=full`` or ``-m torture`` turns them on."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """``-m torture`` means the same as ``TORTURE=full``."""
    if "torture" in (config.getoption("markexpr", "") or "") and \
            "not torture" not in config.getoption("markexpr", ""):
        os.environ["TORTURE"] = "full"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside ``TORTURE=full`` the long versions are deselected (not skipped): the default
    run is the fast subset, and nothing in it reports as skipped work."""
    if os.environ.get("TORTURE") == "full":
        return
    keep = [i for i in items if i.get_closest_marker("torture") is None]
    dropped = [i for i in items if i.get_closest_marker("torture") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
