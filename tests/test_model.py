"""The canonical records."""

from __future__ import annotations

import pytest

from orgsync.model import Department, Employee


def test_records_are_built_by_keyword_only() -> None:
    """Nine ``str | None`` fields in a row: a positional call could swap two silently."""
    with pytest.raises(TypeError):
        Employee("E1", "张三", ("D1",), None, "san@example.com")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Department("D2", "平台部", "D1")  # type: ignore[call-arg]
    assert Employee(key="E1", name="张三", department_keys=("D1",)).email is None
