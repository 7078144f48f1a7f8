"""Leave records from an HR REST API (``leave.source: {type: hris}``).

The same request options as the people endpoint of :mod:`connectors.hris.connector`
(``base_url``, ``auth``, ``headers``, ``envelope``, ``timeout``, ``max_retries``, paging),
with the leave endpoint under ``leaves`` and the six leave fields under ``mapping`` (each a
rule of the shared mapping, :mod:`connectors.mapping`)::

    leave:
      source:
        type: hris
        preset: bamboohr            # optional
        base_url: https://hr.example.com/api
        auth: {type: bearer, token: ${HR_TOKEN}}
        leaves: {path: /leaves, records: data, params: {from: "{today}", to: "{horizon}"},
                 pagination: {type: offset, size: 100, total: total}}
        mapping: {leave_id: id, employee_id: employee.id, start: from, end: to,
                  kind: type.name, status: state}

A query parameter (or body value) written ``{today}`` or ``{horizon}`` is sent as today's
date, or the last date of the look-ahead window (``YYYY-MM-DD``). A failed request or
unstable paging raises :class:`~orgsync.errors.SourceError` (the run deletes nothing); a
bad record is a held :class:`~connectors.leaves.LeaveIssue`, as in the leave file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from connectors.hris.connector import _auth, _envelope, _request, _tls, base_url_of
from connectors.hris.http import Auth, Fetcher, Request, iter_pages
from connectors.hris.presets import LEAVE_PRESETS
from connectors.leaves import LeaveData, collect_leaves
from connectors.mapping import FieldRule, MappingProblem, parse_rule
from connectors.source_options import with_preset
from orgsync.leave_config import LEAVE_COLUMNS
from orgsync.options import Section

PLACEHOLDERS = ("{today}", "{horizon}")


@dataclass(frozen=True)
class HrisLeaves:
    """A validated HRIS leave source; :meth:`read` fetches every page."""

    base_url: str
    auth: Auth
    request: Request
    mapping: Mapping[str, FieldRule]
    verify: bool | str = True
    headers: Mapping[str, str] | None = None
    timeout: float = 30.0
    max_retries: int = 5

    @classmethod
    def from_config(cls, options: Mapping[str, Any], *, base_dir: Path, file: str) -> HrisLeaves:
        """Validate ``leave.source`` (merged onto its preset); ConfigError naming the key."""
        options = with_preset({k: v for k, v in options.items() if k != "type"},
                              LEAVE_PRESETS, kind="hris leave", file=file)
        opts = Section(options, name="leave.source", file=file, base_dir=base_dir)
        opts.raw("preset")
        base_url = base_url_of(opts)
        verify = _tls(opts)
        request = _request(opts.section("leaves"), _envelope(opts))
        m = opts.section("mapping")
        mapping: dict[str, FieldRule] = {}
        for name, required in LEAVE_COLUMNS.items():
            spec = m.raw(name)
            if spec is None:
                if required:
                    raise m.missing(name, f"the field of a leave record that holds {name}, "
                                          f"e.g. {name}: {name}")
                continue
            try:
                mapping[name] = parse_rule(spec)
            except ValueError as exc:
                raise m.error(name, str(exc)) from None
        m.done()
        leaves = cls(base_url=base_url, auth=_auth(opts.section("auth")), request=request,
                     mapping=mapping, verify=verify,
                     headers={str(k): str(v) for k, v in opts.mapping("headers").items()},
                     timeout=opts.number("timeout", 30.0, minimum=0.001),
                     max_retries=opts.number("max_retries", 5, maximum=100))
        opts.done()
        return leaves

    def read(self, today: date, horizon: date) -> LeaveData:
        """Every leave record of every page (SourceError if a request fails)."""
        dates = dict(zip(PLACEHOLDERS, (today.isoformat(), horizon.isoformat()), strict=True))
        request = replace(self.request, params=_dated(self.request.params, dates),
                          body=_dated(self.request.body, dates) if self.request.body else None)
        with Fetcher(self.base_url, self.auth, timeout=self.timeout,
                     max_retries=self.max_retries, verify=self.verify,
                     headers=self.headers or {}) as fetcher:
            return collect_leaves(self._rows(fetcher, request))

    def _rows(self, fetcher: Fetcher,
              request: Request) -> Iterator[tuple[str, Sequence[str | None], bool]]:
        for page, records in iter_pages(fetcher, request, label="hris leaves"):
            for i, raw in enumerate(records, 1):
                yield (f"hris leaves:page {page} item {i}",
                       [_cell(self.mapping.get(name), raw) for name in LEAVE_COLUMNS], False)


def _cell(rule: FieldRule | None, raw: Any) -> str | None:
    try:
        value = rule.value(raw) if rule is not None else None
    except MappingProblem:  # the record is then held for the missing value
        value = None
    text = str(value).strip() if value is not None else ""
    return text or None


def _dated(values: Mapping[str, Any], dates: Mapping[str, str]) -> dict[str, Any]:
    return {k: dates.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
