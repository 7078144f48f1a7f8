"""``type: ldap`` — OpenLDAP and Active Directory (presets ``openldap`` and ``ad``).

Binds with a simple bind (or anonymously), pages through every user under
``base_dn`` with the Simple Paged Results control — so a directory larger than
the server's size limit reads in full — and maps each entry with the shared
declarative mapping (:mod:`connectors.mapping`). ``manager`` DNs become the
manager's key; departments come from the OU tree or from an attribute.

Options (``source`` section; a ``preset`` fills in defaults, the rest overrides)::

    preset: openldap | ad
    url: ldaps://dc1.corp.example.com        # ldap://host:389 or ldaps://host:636
    start_tls: false                         # upgrade ldap:// with StartTLS
    allow_plaintext: false                   # a password bind over plain ldap:// (warns each run)
    tls: {verify: true, ca_file: /etc/ssl/corp-ca.pem}   # verify: false only with a warning
    bind_dn: CN=orgsync,OU=Service,DC=corp,DC=example,DC=com   # absent: anonymous
    bind_password: ${LDAP_PASSWORD}          # or bind_password_file
    base_dn: OU=Staff,DC=corp,DC=example,DC=com
    user_filter: (objectClass=inetOrgPerson) # an LDAP filter, used as written
    match: {department: "R&D (Beijing)"}     # values escaped; a list means any of them
    page_size: 500
    timeout: 30                              # seconds to connect and per response
    attributes: [extraAttribute]             # fetched besides those the mapping names
    departments: {from: ou, base_dn: ..., filter: (objectClass=organizationalUnit),
                  key: entryUUID | objectGUID | dn, name: ou}
               | {from: attribute, field: department, separator: "/"}
    manager_ref: dn                          # or the attribute the manager values hold
    mobile_region: CN
    mapping: {employees: {<canonical field>: <rule>}}

A bind with a password over an unencrypted connection (``ldap://`` without
``start_tls``) would send the password in clear: it is a ConfigError unless
``allow_plaintext: true``, and then every read logs ``ldap.plaintext_bind``.

Connection, bind, TLS and search failures — and a search the server cut short
(size or time limit) — raise :class:`~orgsync.errors.SourceError`; the bind
password never appears in messages. Entry problems become issues at
``ldap:<dn>`` and hold the entry.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import ldap3
import structlog
from ldap3.core.exceptions import LDAPException, LDAPInvalidFilterError
from ldap3.operation.search import parse_filter
from ldap3.utils.conv import escape_filter_chars

from connectors.ldap.entries import normalize_dn, parent_dn, rdn_value, record
from connectors.ldap.groups import LdapGroups, flatten_ldap, parse_groups
from connectors.ldap.presets import PRESETS
from connectors.mapping import (
    FieldRule,
    Mapped,
    MappingProblem,
    collect,
    departments_from_paths,
    employee_from,
    map_record,
    parse_rule,
    path_key,
    profile_fields,
)
from connectors.source_options import mobile_region, read_mapping, with_preset
from orgsync.errors import SourceError
from orgsync.model import Department, Snapshot
from orgsync.options import Section
from orgsync.source import Issue, SourceData
from orgsync.urls import mask_url

log = structlog.get_logger("orgsync.connectors.ldap")

_PAGED_RESULTS = "1.2.840.113556.1.4.319"
_OK, _SIZE_LIMIT, _TIME_LIMIT, _NO_SUCH_OBJECT = 0, 4, 3, 32


@dataclass(frozen=True)
class OuDepartments:
    """Departments are the OUs under ``base_dn`` (which itself is the root, not a department)."""

    base_dn: str
    filter: str = "(objectClass=organizationalUnit)"
    key: str = "entryUUID"
    name: str = "ou"


@dataclass(frozen=True)
class AttributeDepartments:
    """Departments are paths (``研发中心/平台部``) read from each person by a mapping rule."""

    rule: FieldRule
    separator: str = "/"


@dataclass(frozen=True)
class LdapConnector:
    """Reads people (and the OU tree) from an LDAP directory; see the module docstring."""

    type_name: ClassVar[str] = "ldap"

    host: str
    port: int
    use_ssl: bool
    base_dn: str
    user_filter: str
    mapping: Mapping[str, FieldRule]
    departments: OuDepartments | AttributeDepartments | None
    start_tls: bool = False
    allow_plaintext: bool = False
    verify: bool = True
    ca_file: Path | None = None
    bind_dn: str | None = None
    bind_password: str | None = field(default=None, repr=False)
    page_size: int = 500
    timeout: float = 30.0
    attributes: tuple[str, ...] = ()
    manager_ref: str = "dn"
    mobile_region: str = "CN"
    groups: LdapGroups | None = None

    @classmethod
    def from_config(cls, options: Mapping[str, Any], *, base_dir: Path, file: str) -> Self:
        """Validate the ``source`` options (merged onto the preset); ConfigError if bad."""
        options = with_preset(options, PRESETS, kind="ldap", file=file)
        opts = Section(options, name="source", file=file, base_dir=base_dir)
        opts.raw("preset")
        url = opts.string("url")
        parts = urlsplit(url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise opts.error("url", f"'{mask_url(url)}' is not an ldap:// or ldaps:// URL",
                             "e.g. ldaps://dc1.corp.example.com or ldap://127.0.0.1:389")
        try:
            port = parts.port or (636 if parts.scheme == "ldaps" else 389)
        except ValueError:
            raise opts.error("url", f"'{mask_url(url)}' has a bad port") from None
        start_tls = opts.boolean("start_tls", False)
        allow_plaintext = opts.boolean("allow_plaintext", False)
        if start_tls and parts.scheme == "ldaps":
            raise opts.error("start_tls", "cannot be used with ldaps://",
                             "use ldap:// with start_tls, or ldaps:// alone")
        tls = opts.section("tls")
        verify = tls.boolean("verify", True)
        ca_file = tls.path("ca_file")
        tls.done()
        if ca_file is not None and not ca_file.is_file():
            raise tls.error("ca_file", f"'{ca_file}' is not a file")
        bind_dn = opts.string("bind_dn", None)
        password = opts.secret("bind_password", required=bind_dn is not None)
        base_dn = opts.string("base_dn")
        user_filter = _filter(opts, "user_filter", opts.string("user_filter", "(objectClass=*)"))
        user_filter = _with_matches(opts, user_filter)
        departments = _departments(opts, base_dn)
        mapping = read_mapping(opts, "employee", "employees")
        connector = cls(
            host=parts.hostname, port=port, use_ssl=parts.scheme == "ldaps", base_dn=base_dn,
            user_filter=user_filter, mapping=mapping, departments=departments,
            start_tls=start_tls, allow_plaintext=allow_plaintext, verify=verify, ca_file=ca_file,
            bind_dn=bind_dn, bind_password=password,
            page_size=opts.number("page_size", 500, minimum=1),
            timeout=opts.number("timeout", 30.0, minimum=0.001),
            attributes=opts.strings("attributes"),
            manager_ref=opts.string("manager_ref", "dn"),
            mobile_region=mobile_region(opts),
            groups=parse_groups(opts, base_dn),
        )
        opts.done()
        if connector.plaintext_bind and not allow_plaintext:
            raise opts.error("url", f"'{mask_url(url)}' without start_tls would send the bind "
                             "password unencrypted",
                             "use ldaps:// or start_tls: true; on a network you trust, "
                             "allow_plaintext: true accepts it (with a warning on every run)")
        if not verify and (connector.use_ssl or start_tls):
            log.warning("ldap.tls_verification_off",
                        detail="tls.verify is false: the directory's certificate is not checked")
        return connector

    @property
    def plaintext_bind(self) -> bool:
        """True when the bind password would cross the network unencrypted."""
        return bool(self.bind_password) and not self.use_ssl and not self.start_tls

    @property
    def url(self) -> str:
        """The server as a URL, for messages."""
        return f"{'ldaps' if self.use_ssl else 'ldap'}://{self.host}:{self.port}"

    def read(self) -> SourceData:
        """Every user (and OU) under the base; SourceError if any step fails."""
        started = time.monotonic()
        if self.plaintext_bind:
            log.warning("ldap.plaintext_bind", url=self.url,
                        detail="allow_plaintext: the bind password is sent unencrypted; use "
                               "ldaps:// or start_tls")
        conn = self._connect()
        try:
            users = self._search(conn, self.base_dn, self.user_filter, self._user_attributes(),
                                 "users")
            ous = None
            if isinstance(self.departments, OuDepartments):
                d = self.departments
                ous = self._search(conn, d.base_dn, d.filter, sorted({d.key, d.name} - {"dn"}),
                                   "departments")
            groups = None
            if self.groups is not None:
                g = self.groups
                groups = self._search(conn, g.base_dn, g.filter, sorted({g.name, g.member}),
                                      "groups")
        finally:
            _close(conn)
        log.info("ldap.read", users=len(users), ous=len(ous or ()),
                 seconds=round(time.monotonic() - started, 3))
        if not users:
            raise SourceError(f"{self.url}: no entries match {self.user_filter} under "
                              f"{self.base_dn}; check base_dn and user_filter")
        return self._build(users, ous, groups)

    # --- LDAP ------------------------------------------------------------------------------

    def _connect(self) -> ldap3.Connection:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE,
                        ca_certs_file=str(self.ca_file) if self.ca_file else None)
        # ldap3 packs socket timeouts as whole seconds
        seconds = max(1, math.ceil(self.timeout))
        server = ldap3.Server(self.host, port=self.port, use_ssl=self.use_ssl, tls=tls,
                              get_info=ldap3.NONE, connect_timeout=seconds)
        conn = ldap3.Connection(
            server, user=self.bind_dn, password=self.bind_password,
            authentication=ldap3.SIMPLE if self.bind_dn else ldap3.ANONYMOUS,
            receive_timeout=seconds, raise_exceptions=False, auto_referrals=False,
            read_only=True, check_names=False)
        try:
            conn.open()
            if self.start_tls and not conn.start_tls():
                raise SourceError(f"{self.url}: StartTLS refused: {_result(conn)}")
            if not conn.bind():
                who = f"as {self.bind_dn}" if self.bind_dn else "anonymously"
                raise SourceError(f"{self.url}: bind {who} refused: {_result(conn)}; check "
                                  "bind_dn and bind_password")
        except SourceError:
            _close(conn)
            raise
        except Exception as exc:  # ldap3 raises socket, ssl and struct errors as they come
            _close(conn)
            raise SourceError(f"cannot connect to {self.url}: {_exception(exc)}") from None
        return conn

    def _search(self, conn: ldap3.Connection, base: str, search_filter: str,
                attributes: list[str], what: str) -> list[tuple[str, dict[str, Any]]]:
        """Every entry of a paged subtree search as ``(dn, record)``; SourceError if cut short."""
        out: list[tuple[str, dict[str, Any]]] = []
        cookie: bytes | None = None
        pages = 0
        seconds = max(1, math.ceil(self.timeout))
        while True:
            pages += 1
            try:
                conn.search(base, search_filter, ldap3.SUBTREE, attributes=attributes or
                            [ldap3.NO_ATTRIBUTES], paged_size=self.page_size, paged_cookie=cookie,
                            time_limit=seconds)
            except Exception as exc:  # a dropped connection mid-search, a timeout
                raise SourceError(f"{self.url}: searching {what} under {base} failed on page "
                                  f"{pages} after {len(out)} entries: {_exception(exc)}") from None
            result = conn.result
            code = result.get("result")
            if code == _NO_SUCH_OBJECT:
                raise SourceError(f"{self.url}: base DN '{base}' does not exist ({what}); check "
                                  "the base_dn option")
            if code in (_SIZE_LIMIT, _TIME_LIMIT):
                raise SourceError(
                    f"{self.url}: the server stopped the {what} search at its "
                    f"{'size' if code == _SIZE_LIMIT else 'time'} limit after {len(out)} entries "
                    "although paging was requested; the read is incomplete (does the server "
                    "support paged results for this account?)")
            if code != _OK:
                raise SourceError(f"{self.url}: searching {what} under {base} failed on page "
                                  f"{pages} after {len(out)} entries: {_result(conn)}")
            for item in conn.response or ():
                if item.get("type") == "searchResEntry":
                    out.append((item["dn"], record(item["dn"], item.get("raw_attributes", {}))))
            control = (result.get("controls") or {}).get(_PAGED_RESULTS)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                return out

    def _user_attributes(self) -> list[str]:
        names: set[str] = set(self.attributes)
        for rule in self.mapping.values():
            names.update(rule.roots())
        if isinstance(self.departments, AttributeDepartments):
            names.update(self.departments.rule.roots())
        if self.manager_ref != "dn":
            names.add(self.manager_ref)
        names.discard("dn")
        return sorted(names)

    # --- mapping ---------------------------------------------------------------------------

    def _build(self, users: list[tuple[str, dict[str, Any]]],
               ous: list[tuple[str, dict[str, Any]]] | None,
               groups: list[tuple[str, dict[str, Any]]] | None = None) -> SourceData:
        issues: list[Issue] = []
        departments: dict[str, Department] = {}
        ou_key: dict[str, str] = {}  # normalised OU DN -> department key
        held_departments: set[str] = set()
        if ous is not None:
            assert isinstance(self.departments, OuDepartments)
            departments, ou_key, ou_issues = _ou_tree(ous, self.departments)
            issues.extend(ou_issues)
            held_departments = {i.key for i in ou_issues if i.key}
        people: list[tuple[str, Mapped]] = []
        paths: list[str] = []
        by_ref: dict[str, str] = {}
        by_dn: dict[str, str] = {}  # normalised DN → employee key (source groups' members)
        for dn, entry in users:
            mapped = map_record(entry, self.mapping, region=self.mobile_region)
            norm = normalize_dn(dn)
            if isinstance(self.departments, AttributeDepartments):
                self._path_departments(mapped, entry, paths)
            elif isinstance(self.departments, OuDepartments):
                up = parent_dn(norm)
                while up is not None and up not in ou_key:
                    up = parent_dn(up)
                mapped.values["department_keys"] = (ou_key[up],) if up is not None else ()
            if mapped.key is not None:
                by_dn.setdefault(norm, mapped.key)
                ref = norm if self.manager_ref == "dn" else entry.get(self.manager_ref)
                if isinstance(ref, str):
                    by_ref.setdefault(ref if self.manager_ref == "dn" else ref.casefold(),
                                      mapped.key)
            people.append((f"ldap:{dn}", mapped))
        if isinstance(self.departments, AttributeDepartments):
            departments = departments_from_paths(paths, self.departments.separator)
        employees = collect(people, "employee")
        for key, mapped in employees.records.items():
            ref = mapped.values.get("manager_key")
            if ref is None:
                continue
            target = by_ref.get(normalize_dn(ref) if self.manager_ref == "dn" else ref.casefold())
            if target is None:
                employees.issues.append(Issue(
                    "employee", key, "manager_key",
                    f"manager '{ref}' is not among the entries read (outside base_dn, or not "
                    "matched by user_filter)", "warning", employees.where[key]))
            mapped.values["manager_key"] = target
        snapshot = Snapshot(departments,
                            {k: employee_from(m.values, k) for k, m in employees.records.items()})
        return SourceData(snapshot, [*issues, *employees.issues], held_departments,
                          employees.held, {}, employees.where,
                          held_rows=employees.held_rows,
                          profile_fields=profile_fields(self.mapping),
                          groups=flatten_ldap(groups, self.groups, by_dn)
                          if groups is not None and self.groups is not None else {})

    def _path_departments(self, mapped: Mapped, entry: dict[str, Any], paths: list[str]) -> None:
        assert isinstance(self.departments, AttributeDepartments)
        try:
            value = self.departments.rule.value(entry)
        except MappingProblem as exc:
            mapped.problems.append(("department_keys", str(exc)))
            return
        texts = [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]
        sep = self.departments.separator
        paths.extend(texts)
        mapped.values["department_keys"] = tuple(k for k in (path_key(t, sep) for t in texts) if k)


def _ou_tree(ous: list[tuple[str, dict[str, Any]]], spec: OuDepartments
             ) -> tuple[dict[str, Department], dict[str, str], list[Issue]]:
    """Departments from OU entries: key, name and parent (the nearest OU above)."""
    root = normalize_dn(spec.base_dn)
    issues: list[Issue] = []
    key_of: dict[str, str] = {}
    names: dict[str, str] = {}
    for dn, entry in ous:
        norm = normalize_dn(dn)
        if norm == root:
            continue
        name = entry.get(spec.name) or rdn_value(dn)
        if isinstance(name, list):
            name = name[0]
        if spec.key == "dn":
            key: Any = "/".join(reversed([rdn_value(p) for p in _chain(dn, root)]))
        else:
            key = entry.get(spec.key)
        if not isinstance(key, str) or not key:
            issues.append(Issue("department", None, "key",
                                f"the OU has no single {spec.key} value", "error", f"ldap:{dn}"))
            continue
        key_of[norm] = key
        names[norm] = str(name)
    departments: dict[str, Department] = {}
    for norm, key in key_of.items():
        up = parent_dn(norm)
        while up is not None and up != root and up not in key_of:
            up = parent_dn(up)
        parent = key_of.get(up) if up is not None and up != root else None
        departments[key] = Department(key=key, name=names[norm], parent_key=parent)
    return departments, key_of, issues


def _chain(dn: str, root: str) -> list[str]:
    """The DN and its ancestors below ``root``, nearest first (original spelling)."""
    out: list[str] = []
    current: str | None = dn
    while current is not None and normalize_dn(current) != root:
        out.append(current)
        current = _parent_raw(current)
    return out


def _parent_raw(dn: str) -> str | None:
    head, sep, rest = dn.partition(",")
    while head.endswith("\\") and sep:  # an escaped comma is part of the RDN
        more, sep, rest = rest.partition(",")
        head = f"{head},{more}"
    return rest.strip() or None


def _filter(opts: Section, key: str, text: str) -> str:
    text = text.strip()
    if not text.startswith("("):
        text = f"({text})"
    try:
        parse_filter(text, None, False, False, None, False)  # type: ignore[no-untyped-call]
    except (LDAPInvalidFilterError, LDAPException) as exc:
        raise opts.error(key, f"'{text}' is not a valid LDAP filter: {exc}",
                         "e.g. (&(objectClass=inetOrgPerson)(!(ou=disabled)))") from None
    return text


def _with_matches(opts: Section, user_filter: str) -> str:
    """``match: {attr: value | [values]}`` ANDed onto the filter, values escaped."""
    match = opts.mapping("match")
    parts = []
    for attr, values in match.items():
        if not isinstance(attr, str) or not attr.replace("-", "").replace(";", "").isalnum():
            raise opts.error(f"match.{attr}", "is not an attribute name")
        items = values if isinstance(values, list) else [values]
        if not items or not all(isinstance(v, str | int) and str(v) for v in items):
            raise opts.error(f"match.{attr}", "expected a value or a list of values")
        terms = "".join(f"({attr}={escape_filter_chars(str(v))})" for v in items)
        parts.append(terms if len(items) == 1 else f"(|{terms})")
    return f"(&{user_filter}{''.join(parts)})" if parts else user_filter


def _departments(opts: Section, base_dn: str) -> OuDepartments | AttributeDepartments | None:
    d = opts.section("departments")
    kind = d.choice("from", "ou", ("ou", "attribute", "none"))
    result: OuDepartments | AttributeDepartments | None
    if kind == "ou":
        result = OuDepartments(
            base_dn=d.string("base_dn", base_dn),
            filter=_filter(d, "filter", d.string("filter", "(objectClass=organizationalUnit)")),
            key=d.string("key", "entryUUID"), name=d.string("name", "ou"))
    elif kind == "attribute":
        spec = d.raw("field")
        if spec is None:
            raise d.error("field", "is required with from: attribute", "e.g. field: department")
        try:
            rule = parse_rule(spec)
        except ValueError as exc:
            raise d.error("field", str(exc)) from None
        result = AttributeDepartments(rule, d.string("separator", "/"))
    else:
        result = None
    d.done()
    return result


def _close(conn: ldap3.Connection) -> None:
    """Unbind, ignoring a connection that is already broken."""
    with contextlib.suppress(Exception):  # a dead socket must not hide the real error
        conn.unbind()


def _result(conn: ldap3.Connection) -> str:
    result = conn.result or {}
    text = str(result.get("description") or "unknown error")
    message = str(result.get("message") or "").strip()
    return f"{text} ({message})" if message else text


def _exception(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

