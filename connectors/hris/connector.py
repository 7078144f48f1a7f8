"""``type: hris`` — a generic JSON REST connector, with presets (``scim``, ``bamboohr``).

Reads every page of the employees endpoint (and, optionally, a departments
endpoint), maps each record with the shared declarative mapping
(:mod:`connectors.mapping`), and derives departments either from a path field
on each person (``研发中心/平台部``) or from the departments endpoint.

Options (``source`` section; a ``preset`` fills in defaults, the rest overrides)::

    preset: scim | bamboohr            # optional
    base_url: https://hr.example.com/api/v1
    auth: {type: none | bearer | basic | oauth2, token / token_file, header, scheme,
           username / username_file, password / password_file,
           token_url, client_id / client_id_file, client_secret / client_secret_file, scope,
           client_auth: body | basic}
    timeout: 30            # seconds per request
    max_retries: 5         # per request, for 429/503 (after Retry-After), 5xx, network errors
    max_retry_wait: 120    # a Retry-After longer than this aborts the read
    backoff: 0.5           # first back-off for 5xx / network errors, doubled each time
    tls: {verify: true, ca_file: path}
    headers: {X-Api-Version: "2"}
    envelope: {code: code, ok: 0, message: msg}   # body-level status, e.g. Feishu's
    employees: {path, method: GET | POST, params: {}, body: {}, records: <path to the list>,
                pagination: {type: none | offset | page | cursor | link | page_token, size,
                             size_param, offset_param, page_param, cursor_param, token_param,
                             start, next, has_more, total, in: query | body, max_pages}}
    departments: {from: path, field: <rule>, separator: "/"}
               | {from: endpoint, path, method, params, body, records, pagination}
    manager_ref: <path>    # the manager field holds this field of the manager's record
    mobile_region: CN      # region for mobiles written without +country code
    mapping: {employees: {<canonical field>: <rule>}, departments: {...}}

Record problems become issues at ``hris:page 3 item 17`` (the record is held);
a failed request, a page error mid-way, a page that contradicts the announced
total, or a cursor that repeats raises :class:`~orgsync.errors.SourceError`:
never a partial org.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, cast

import structlog

from connectors.groups import flatten
from connectors.hris.http import Auth, Envelope, Fetcher, Paging, Request, iter_pages
from connectors.hris.presets import PRESETS
from connectors.mapping import (
    FieldPath,
    FieldRule,
    Mapped,
    MappingProblem,
    collect,
    department_from,
    departments_from_paths,
    employee_from,
    map_record,
    parse_rule,
    path_key,
    profile_fields,
    resolve_references,
)
from connectors.source_options import mobile_region, read_mapping, with_preset
from orgsync.errors import SourceError
from orgsync.model import Snapshot
from orgsync.options import Section
from orgsync.source import SourceData
from orgsync.urls import mask_url

log = structlog.get_logger("orgsync.connectors.hris")

_PAGING_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "offset": {"offset_param": "offset", "size_param": "limit", "start": 0},
    "page": {"page_param": "page", "size_param": "page_size", "start": 1},
    "cursor": {"cursor_param": "cursor", "size_param": None},
    "link": {"size_param": None},
    "page_token": {"token_param": "page_token", "next": "page_token", "has_more": "has_more",
                   "size_param": "page_size"},
}


@dataclass(frozen=True)
class DepartmentSource:
    """Where departments come from: a path field on each person, or their own endpoint."""

    kind: Literal["path", "endpoint"]
    rule: FieldRule | None = None
    separator: str = "/"
    request: Request | None = None
    mapping: Mapping[str, FieldRule] = field(default_factory=dict)


@dataclass(frozen=True)
class HrisConnector:
    """Reads people (and departments) from a JSON REST API; see the module docstring."""

    type_name: ClassVar[str] = "hris"

    base_url: str
    auth: Auth
    employees: Request
    mapping: Mapping[str, FieldRule]
    departments: DepartmentSource
    manager_ref: FieldPath | None = None
    mobile_region: str = "CN"
    timeout: float = 30.0
    max_retries: int = 5
    max_retry_wait: float = 120.0
    backoff: float = 0.5
    verify: bool | str = True
    headers: Mapping[str, str] = field(default_factory=dict)
    groups: GroupRequest | None = None

    @classmethod
    def from_config(cls, options: Mapping[str, Any], *, base_dir: Path, file: str) -> Self:
        """Validate the ``source`` options (merged onto the preset); ConfigError if bad."""
        options = with_preset(options, PRESETS, kind="hris", file=file)
        opts = Section(options, name="source", file=file, base_dir=base_dir)
        opts.raw("preset")
        base_url = base_url_of(opts)
        verify = _tls(opts)
        envelope = _envelope(opts)
        employees = _request(opts.section("employees"), envelope)
        dept = opts.section("departments")
        kind = dept.choice("from", "path", ("path", "endpoint"))
        if kind == "path":
            spec = dept.raw("field")
            if spec is None:
                raise dept.error("field", "is required with from: path",
                                 "e.g. field: department, or field: '{division}/{department}'")
            try:
                rule = parse_rule(spec)
            except ValueError as exc:
                raise dept.error("field", str(exc)) from None
            departments = DepartmentSource("path", rule=rule,
                                           separator=dept.string("separator", "/"))
            dept.done()
        else:
            request = _request(dept, envelope, allow={"from"})
            departments = DepartmentSource("endpoint", request=request,
                                           mapping=read_mapping(opts, "department", "departments"))
        mapping = read_mapping(opts, "employee", "employees")
        ref = opts.string("manager_ref", None)
        headers = opts.mapping("headers")
        groups = _groups(opts.section("groups"), envelope) if opts.raw("groups") else None
        connector = cls(
            base_url=base_url, auth=_auth(opts.section("auth")), employees=employees, mapping=mapping,
            departments=departments, manager_ref=_path(opts, "manager_ref", ref) if ref else None,
            mobile_region=mobile_region(opts),
            timeout=opts.number("timeout", 30.0, minimum=0.001),
            max_retries=opts.number("max_retries", 5, maximum=100),
            max_retry_wait=opts.number("max_retry_wait", 120.0),
            backoff=opts.number("backoff", 0.5), verify=verify,
            headers={str(k): str(v) for k, v in headers.items()}, groups=groups,
        )
        opts.done()
        return connector

    def read(self) -> SourceData:
        """Every page of people (and departments); SourceError if any request fails."""
        with Fetcher(self.base_url, self.auth, timeout=self.timeout, max_retries=self.max_retries,
                     max_retry_wait=self.max_retry_wait, backoff=self.backoff, verify=self.verify,
                     headers=self.headers) as fetcher:
            people = list(self._people(fetcher))
            if not people:
                raise SourceError(
                    f"hris {mask_url(self.employees.path)}: no employee records were returned; check the "
                    f"endpoint and the 'records' path"
                    + (f" ({self.employees.records.text})" if self.employees.records else ""))
            depts = (self._department_records(fetcher) if self.departments.kind == "endpoint"
                     else None)
            groups = self._groups(fetcher, people) if self.groups is not None else {}
            log.info("hris.read", employees=len(people), requests=fetcher.requests,
                     waited=round(fetcher.waited, 3))
        data = self._build(people, depts)
        data.groups = groups
        return data

    def _people(self, fetcher: Fetcher) -> Iterator[tuple[str, Mapped, Any]]:
        """``(where, mapped, raw)`` for every person; SourceError on unstable paging."""
        page_of: dict[str, int] = {}
        for page, records in iter_pages(fetcher, self.employees, label="hris"):
            for i, raw in enumerate(records, 1):
                mapped = map_record(raw, self.mapping, region=self.mobile_region)
                key = mapped.key
                if key is not None:
                    first = page_of.setdefault(key, page)
                    if first != page:
                        raise SourceError(
                            f"hris {mask_url(self.employees.path)}: record '{key}' is on page {first} and "
                            f"on page {page}: the server's paging is unstable (records may also "
                            "be missing); add a sort order to employees.params")
                yield f"hris:page {page} item {i}", mapped, raw

    def _groups(self, fetcher: Fetcher,
                people: list[tuple[str, Mapped, Any]]) -> dict[str, frozenset[str]]:
        """Every group of the groups endpoint (SCIM ``/Groups``), nested groups flattened."""
        spec = self.groups
        assert spec is not None
        refs = {str(ref): m.key for _, m, raw in people
                if m.key is not None and (ref := spec.person_ref.get(raw)) is not None}
        members: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for _page, records in iter_pages(fetcher, spec.request, label="hris groups"):
            for raw in records:
                ref = spec.ref.get(raw)
                if ref is None:
                    continue
                listed = spec.members.get(raw) or []
                members[str(ref)] = [str(v) for item in
                                     (listed if isinstance(listed, list) else [listed])
                                     if (v := item.get(spec.member_value)
                                         if isinstance(item, Mapping) else item) is not None]
                if (name := spec.name.get(raw)) is not None:
                    names[str(ref)] = str(name)
        return flatten(members, names, refs)

    def _department_records(self, fetcher: Fetcher) -> list[tuple[str, Mapped]]:
        request = self.departments.request
        assert request is not None
        out = []
        for page, records in iter_pages(fetcher, request, label="hris departments"):
            for i, raw in enumerate(records, 1):
                out.append((f"hris:departments page {page} item {i}",
                            map_record(raw, self.departments.mapping, region=self.mobile_region)))
        return out

    def _build(self, people: list[tuple[str, Mapped, Any]],
               depts: list[tuple[str, Mapped]] | None) -> SourceData:
        source = self.departments
        paths: list[str] = []
        if source.kind == "path":
            assert source.rule is not None
            for _, mapped, raw in people:
                try:
                    value = source.rule.value(raw)
                except MappingProblem as exc:
                    mapped.problems.append(("department_keys", str(exc)))
                    continue
                items = value if isinstance(value, list) else [value]
                texts = [str(v) for v in items if v is not None]
                keys = tuple(k for k in (path_key(t, source.separator) for t in texts) if k)
                paths.extend(texts)
                mapped.values["department_keys"] = keys
        employees = collect(((w, m) for w, m, _ in people), "employee")
        if self.manager_ref is not None:
            index: dict[str, str] = {}
            for _, mapped, raw in people:
                ref = self.manager_ref.get(raw)
                if mapped.key is not None and ref is not None:
                    index.setdefault(str(ref), mapped.key)
            resolve_references(employees, "manager_key", index, entity="employee",
                               describe="manager")
        issues = list(employees.issues)
        held_departments: set[str] = set()
        department_rows: dict[str, str] = {}
        if depts is None:
            departments = departments_from_paths(paths, source.separator)
        else:
            collected = collect(depts, "department")
            departments = {k: department_from(m.values, k) for k, m in collected.records.items()}
            issues.extend(collected.issues)
            held_departments = collected.held
            department_rows = collected.where
        snapshot = Snapshot(
            departments,
            {k: employee_from(m.values, k) for k, m in employees.records.items()},
        )
        return SourceData(snapshot, issues, held_departments, employees.held, department_rows,
                          employees.where,
                          held_rows=employees.held_rows,
                          profile_fields=profile_fields(self.mapping))


def _path(opts: Section, key: str, text: str) -> FieldPath:
    try:
        return FieldPath.parse(text)
    except ValueError as exc:
        raise opts.error(key, str(exc)) from None


def base_url_of(opts: Section) -> str:
    """The section's ``base_url``; a ConfigError unless it is an http(s) URL."""
    base_url = opts.string("base_url")
    if not base_url.startswith(("http://", "https://")):
        raise opts.error("base_url", f"'{base_url}' is not an http(s) URL",
                         "e.g. https://api.example.com/v1")
    return base_url


def _tls(opts: Section) -> bool | str:
    tls = opts.section("tls")
    verify = tls.boolean("verify", True)
    ca_file = tls.path("ca_file")
    tls.done()
    if not verify:
        log.warning("hris.tls_verification_off",
                    detail="tls.verify is false: the HR API's certificate is not checked")
        return False
    if ca_file is not None:
        if not ca_file.is_file():
            raise tls.error("ca_file", f"'{ca_file}' is not a file")
        return str(ca_file)
    return True


def _envelope(opts: Section) -> Envelope | None:
    env = opts.section("envelope")
    code = env.string("code", None)
    ok = env.raw("ok", 0)
    message = env.string("message", None)
    env.done()
    if code is None:
        return None
    return Envelope(_path(env, "code", code), str(ok),
                    _path(env, "message", message) if message else None)


def _auth(a: Section) -> Auth:
    kind = a.choice("type", "none", ("none", "bearer", "basic", "oauth2"))
    auth: Auth
    if kind == "bearer":
        auth = Auth("bearer", token=a.secret("token"), header=a.string("header", "Authorization"),
                    scheme=a.string("scheme", "Bearer"))
    elif kind == "basic":
        auth = Auth("basic", username=a.secret("username"), password=a.secret("password"))
    elif kind == "oauth2":
        auth = Auth("oauth2", token_url=a.string("token_url"),
                    client_id=a.secret("client_id"), client_secret=a.secret("client_secret"),
                    scope=a.string("scope", None),
                    client_auth=cast(Literal["body", "basic"],
                                     a.choice("client_auth", "body", ("body", "basic"))))
    else:
        auth = Auth("none")
    a.done()
    return auth


@dataclass(frozen=True)
class GroupRequest:
    """``source.groups``: the groups endpoint and where a group's id, name and members are."""

    request: Request
    ref: FieldPath
    name: FieldPath
    members: FieldPath
    member_value: str
    person_ref: FieldPath
    """Where a person's record holds the id that group members refer to."""


def _groups(g: Section, envelope: Envelope | None) -> GroupRequest:
    ref = _path(g, "id", g.string("id", "id"))
    name = _path(g, "name", g.string("name", "displayName"))
    members = _path(g, "members", g.string("members", "members"))
    member_value = g.string("member_value", "value")
    person_ref = _path(g, "person_ref", g.string("person_ref", "id"))
    return GroupRequest(_request(g, envelope), ref, name, members, member_value, person_ref)


def _request(r: Section, envelope: Envelope | None, *, allow: set[str] | None = None) -> Request:
    for key in allow or ():
        r.raw(key)
    path = r.string("path")
    method = r.choice("method", "GET", ("GET", "POST"))
    params = r.mapping("params")
    for k, v in params.items():
        if not isinstance(v, str | int | float | bool) and v is not None:
            raise r.error(f"params.{k}", "expected a text or a number")
    body = r.raw("body")
    if body is not None and not isinstance(body, Mapping):
        raise r.error("body", "expected a mapping (sent as a JSON object)")
    records = r.string("records", None)
    p = r.section("pagination")
    kind = p.choice("type", "none", tuple(_PAGING_DEFAULTS))
    d = _PAGING_DEFAULTS[kind]

    def opt_path(key: str) -> FieldPath | None:
        text = p.string(key, d.get(key))
        return _path(p, key, text) if text else None

    paging = Paging(
        kind=cast(Any, kind), size=p.number("size", 100, minimum=1),
        size_param=p.string("size_param", d.get("size_param")),
        offset_param=p.string("offset_param", d.get("offset_param", "offset")),
        start=p.number("start", int(d.get("start", 0))),
        page_param=p.string("page_param", d.get("page_param", "page")),
        cursor_param=p.string("cursor_param", d.get("cursor_param", "cursor")),
        token_param=p.string("token_param", d.get("token_param", "page_token")),
        next=opt_path("next"), has_more=opt_path("has_more"), total=opt_path("total"),
        location=cast(Literal["query", "body"], p.choice("in", "query", ("query", "body"))),
        max_pages=p.number("max_pages", 100_000, minimum=1),
    )
    if kind == "cursor" and paging.next is None:
        raise p.error("next", "is required for cursor pagination",
                      "the path of the next cursor in the body, e.g. next: meta.next_cursor")
    p.done()
    request = Request(path=path, method=cast(Literal["GET", "POST"], method),
                      params={str(k): v for k, v in params.items() if v is not None},
                      body=body, records=_path(r, "records", records) if records else None,
                      paging=paging, envelope=envelope)
    r.done()
    return request
