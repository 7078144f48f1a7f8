"""Preview a source: the canonical snapshot a config produces, with its validation report.

For debugging a mapping without Feishu: nothing here talks to Feishu or opens
the ledger. :func:`load_source_config` accepts a config whose ``feishu``
credentials are not set in this shell (they are not needed to read the source);
:func:`preview_source` reads and validates; :func:`render_text` and
:func:`to_json` show the result.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.registry import build_connector
from orgsync.config import Config, config_from_dict, load_config
from orgsync.errors import ConfigError, OrgsyncError, SourceError
from orgsync.model import Status
from orgsync.scope import apply_scope
from orgsync.source import SourceData
from orgsync.urls import mask_urls
from orgsync.validate import validate

_PLACEHOLDER_FEISHU = {"app_id": "preview", "app_secret": "preview"}


def load_source_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """The config at ``path``; a ``feishu`` section that cannot be used is replaced.

    Every other error (including the ``source`` section's) is raised as usual.
    """
    try:
        return load_config(path, env=env)
    except ConfigError as exc:
        if not (exc.key or "").startswith("feishu"):
            raise
    # The file parsed (load_config checks the YAML before the sections), so this cannot fail.
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    data = {**data, "feishu": _PLACEHOLDER_FEISHU}
    return config_from_dict(data, file=str(path), base_dir=Path(path).resolve().parent, env=env)


def preview_source(config: Config) -> SourceData:
    """Read the configured source and validate it (SourceError if the read fails)."""
    connector = build_connector(config.source)
    try:
        data = connector.read()
    except OrgsyncError:
        raise
    except Exception as exc:  # a connector bug is a failed read, as in a run
        raise SourceError(f"source {config.source.type} failed: {mask_urls(str(exc))}") from exc
    return validate(apply_scope(config.scope, data))


def summary(data: SourceData) -> dict[str, int]:
    """Counts: departments, employees (active / terminated), held records, issues."""
    emps = data.snapshot.employees
    active = sum(1 for e in emps.values() if e.status is Status.ACTIVE)
    return {
        "departments": len(data.snapshot.departments),
        "employees": len(emps),
        "active": active,
        "terminated": len(emps) - active,
        "held_departments": len(data.held_departments - data.out_of_scope_departments.keys()),
        "held_employees": len(data.held_employees - data.out_of_scope_employees.keys()),
        "out_of_scope_departments": len(data.out_of_scope_departments),
        "out_of_scope_employees": len(data.out_of_scope_employees),
        "errors": len(data.errors()),
        "warnings": len(data.warnings()),
    }


def to_json(data: SourceData) -> str:
    """The whole preview as JSON (records sorted by key)."""
    snap = data.snapshot
    doc: dict[str, Any] = {
        "summary": summary(data),
        "departments": [{"key": k, **snap.departments[k].fields()} for k in sorted(snap.departments)],
        "employees": [{"key": k, **snap.employees[k].fields()} for k in sorted(snap.employees)],
        "issues": [{"entity": i.entity, "key": i.key, "field": i.field, "reason": i.reason,
                    "severity": i.severity, "where": i.where} for i in data.issues],
        "held": {"departments": sorted(data.held_departments),
                 "employees": sorted(data.held_employees)},
        "out_of_scope": {"departments": dict(sorted(data.out_of_scope_departments.items())),
                         "employees": dict(sorted(data.out_of_scope_employees.items()))},
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def render_text(data: SourceData, console: Console, *, limit: int = 50) -> None:
    """A human preview: counts, the department tree, employees, then every issue.

    ``limit`` caps the departments and employees shown (0 = all); issues are never cut.
    """
    s = summary(data)
    console.print(f"[bold]{s['departments']} departments, {s['employees']} employees[/] "
                  f"({s['active']} active, {s['terminated']} terminated); held back: "
                  f"{s['held_departments']} departments, {s['held_employees']} employees")
    if data.out_of_scope_departments or data.out_of_scope_employees:
        console.print(f"Out of scope (not managed): {s['out_of_scope_departments']} departments, "
                      f"{s['out_of_scope_employees']} employees")
        for key, why in [*sorted(data.out_of_scope_departments.items()),
                         *sorted(data.out_of_scope_employees.items())][:limit or None]:
            console.print(f"  {escape(key)}: {escape(why)}", highlight=False)
    snap = data.snapshot
    children: dict[str | None, list[str]] = defaultdict(list)
    for key, d in snap.departments.items():
        parent = d.parent_key if d.parent_key in snap.departments else None
        children[parent].append(key)
    lines: list[str] = []
    stack = [(k, 0) for k in sorted(children[None], key=lambda k: snap.departments[k].name)]
    stack.reverse()
    while stack:
        key, depth = stack.pop()
        d = snap.departments[key]
        leader = f", leader {d.leader_key}" if d.leader_key else ""
        lines.append(f"{'  ' * depth}{escape(d.name)}  [dim]({escape(key + leader)})[/]")
        below = sorted(children.get(key, ()), key=lambda k: snap.departments[k].name)
        stack.extend((k, depth + 1) for k in reversed(below))
    console.print("\n[bold]Departments[/]")
    _print_capped(console, lines, limit)

    table = Table("key", "name", "departments", "email", "mobile", "manager", "type", "status",
                  title=None, show_lines=False)
    keys = sorted(snap.employees)
    for key in keys[:limit or None]:
        e = snap.employees[key]
        cells = (key, e.name, "; ".join(e.department_keys), e.email or "", e.mobile or "",
                 e.manager_key or "", e.employee_type.name.lower(), str(e.status))
        table.add_row(*(escape(c) for c in cells))  # source data: never markup
    console.print("\n[bold]Employees[/]")
    console.print(table)
    if limit and len(keys) > limit:
        console.print(f"… and {len(keys) - limit} more (--limit 0 shows all)")

    console.print(f"\n[bold]Validation[/]: {s['errors']} errors (records held back), "
                  f"{s['warnings']} warnings (field cleared)")
    for issue in data.issues:
        style = "red" if issue.held else "yellow"
        console.print(f"[{style}]{'error' if issue.held else 'warning'}[/] {escape(str(issue))}",
                      highlight=False)


def _print_capped(console: Console, lines: list[str], limit: int) -> None:
    for line in lines[:limit or None]:
        console.print(line)
    if limit and len(lines) > limit:
        console.print(f"… and {len(lines) - limit} more (--limit 0 shows all)")
