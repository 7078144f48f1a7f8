"""The ``leave:`` config section: where approved leave comes from and how it shows in Feishu.

```yaml
leave:
  source: {type: csv, file: hr/leaves.csv, columns: {...}, encoding: ..., delimiter: ...}
  timezone: Asia/Shanghai          # the default zone of a person's leave
  city_timezones: {London: Europe/London}   # by the person's HR city
  person_timezones: {E1001: America/New_York}  # by employee id (wins over the city)
  lookahead_days: 60               # leave starting later than this is not marked yet
  title: "请假：{kind} / On leave: {kind}"
  description: "{name}：{start} – {end}"
  max_delete_fraction: 0.3         # of the future marks in one run; more is held
  max_delete_floor: 10             # ... unless no more than this many
  interval: 10m                    # the daemon's leave schedule
```

No ``leave`` section (or no ``leave.source``): leave sync is off.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orgsync.options import Section

#: The variables a title or description may use.
TEMPLATE_VARIABLES = frozenset({"kind", "start", "end", "name", "employee_id"})
DEFAULT_TITLE = "请假：{kind} / On leave: {kind}"
DEFAULT_DESCRIPTION = "{name} 请假 {start} – {end} / {name} is on leave {start} – {end}"

#: The leave file's columns: required or not.
LEAVE_COLUMNS: dict[str, bool] = {"leave_id": True, "employee_id": True, "start": True,
                                  "end": True, "kind": False, "status": False}


@dataclass(frozen=True)
class LeaveSourceConfig:
    """Where the leave records are read: the leave file (``type: csv``), or an HR REST API
    (``type: hris``, its validated ``options``, see :mod:`connectors.hris.leaves`)."""

    type: str
    file: Path
    options: Mapping[str, object] = field(default_factory=dict)
    base_dir: Path = Path(".")
    columns: Mapping[str, str] = field(default_factory=dict)
    encoding: str = "utf-8-sig"
    delimiter: str = ","


@dataclass(frozen=True)
class LeaveConfig:
    """The validated ``leave`` section; ``source`` None means leave sync is off."""

    source: LeaveSourceConfig | None = None
    timezone: str = "Asia/Shanghai"
    city_timezones: Mapping[str, str] = field(default_factory=dict)
    person_timezones: Mapping[str, str] = field(default_factory=dict)
    lookahead_days: int = 60
    title: str = DEFAULT_TITLE
    description: str = DEFAULT_DESCRIPTION
    max_delete_fraction: float = 0.3
    max_delete_floor: int = 10
    interval: float = 600.0

    @property
    def enabled(self) -> bool:
        """True when a leave source is configured."""
        return self.source is not None

    def zone_of(self, employee_id: str, city: str | None) -> str:
        """The timezone of a person's leave: by person, else by city, else the default."""
        return self.person_timezones.get(employee_id) or \
            (self.city_timezones.get(city) if city else None) or self.timezone


def parse_leave(s: Section) -> LeaveConfig:
    """Read the ``leave`` section (ConfigError naming file, key and remedy)."""
    source = _parse_source(s.section("source")) if s.raw("source") is not None else None
    zone = _zone(s, "timezone", s.string("timezone", LeaveConfig.timezone))
    cities = {str(k): _zone(s, f"city_timezones.{k}", v)
              for k, v in s.mapping("city_timezones").items()}
    people = {str(k): _zone(s, f"person_timezones.{k}", v)
              for k, v in s.mapping("person_timezones").items()}
    return LeaveConfig(
        source=source, timezone=zone, city_timezones=cities, person_timezones=people,
        lookahead_days=s.number("lookahead_days", LeaveConfig.lookahead_days, minimum=1,
                                maximum=366),
        title=_template(s, "title", DEFAULT_TITLE),
        description=_template(s, "description", DEFAULT_DESCRIPTION),
        max_delete_fraction=s.number("max_delete_fraction", LeaveConfig.max_delete_fraction,
                                     minimum=0, maximum=1.0),
        max_delete_floor=s.number("max_delete_floor", LeaveConfig.max_delete_floor, minimum=0),
        interval=s.duration("interval", LeaveConfig.interval, minimum=10.0),
    )


def _parse_source(s: Section) -> LeaveSourceConfig:
    kind = s.choice("type", "csv", ("csv", "hris"))
    if kind == "hris":
        from connectors.hris.leaves import HrisLeaves  # connectors build on this module

        options = dict(s.data)
        HrisLeaves.from_config(options, base_dir=s.base_dir, file=s.file)
        s.used.update(options)
        return LeaveSourceConfig(type=kind, file=Path(s.file), options=options,
                                 base_dir=s.base_dir)
    file = s.path("file")
    if file is None:
        raise s.missing("file", "the path of the leave CSV, e.g. file: hr/leaves.csv "
                                "(relative to the config file)")
    columns: dict[str, str] = {}
    for canonical, header in s.mapping("columns").items():
        if canonical not in LEAVE_COLUMNS:
            raise s.error(f"columns.{canonical}", "unknown leave column",
                          f"known: {', '.join(LEAVE_COLUMNS)}")
        if not isinstance(header, str | int) or not str(header).strip():
            raise s.error(f"columns.{canonical}", "expected the header text",
                          "quote it if it looks like a number or a date")
        columns[str(canonical)] = str(header).strip()
    delimiter = s.string("delimiter", ",", strip=False)
    if delimiter in ("tab", "\\t"):
        delimiter = "\t"
    if delimiter != "auto" and (len(delimiter) != 1 or delimiter in "\r\n\""):
        raise s.error("delimiter", f"{delimiter!r} is not a single-character delimiter",
                      "use ',', ';', '|', 'tab' or 'auto'")
    return LeaveSourceConfig(type=kind, file=file, columns=columns,
                             encoding=s.string("encoding", "utf-8-sig"), delimiter=delimiter)


def _zone(s: Section, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise s.error(key, f"expected a timezone name, got {value!r}", "e.g. Asia/Shanghai")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise s.error(key, f"unknown timezone {value!r}",
                      "use an IANA name such as Asia/Shanghai or Europe/London") from None
    return value


def _template(s: Section, key: str, default: str) -> str:
    text = s.string(key, default, strip=False)
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(text)
                 if name is not None or spec or conv]
    except ValueError as exc:
        raise s.error(key, f"is not a valid template: {exc}",
                      "write {{ and }} for literal braces") from None
    for name in names:
        if name not in TEMPLATE_VARIABLES:
            raise s.error(key, f"unknown variable {{{name}}}",
                          f"use {', '.join('{' + v + '}' for v in sorted(TEMPLATE_VARIABLES))}")
    return text
