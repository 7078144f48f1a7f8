"""Declarative field mapping shared by every connector: raw record → canonical fields.

A *raw record* is whatever a source yields: a JSON object (HRIS), an LDAP entry's
attributes (text, or a list of texts for multi-valued attributes), a CSV row
(header → cell). A mapping names, for each canonical field, where its value
comes from and how it is cleaned::

    employees:
      key: id                                         # a field path
      name: "{name.familyName}{name.givenName}"       # a template ({path} placeholders)
      email:                                          # the long form
        from: [emails[primary=true].value, emails[0].value]   # first non-empty wins
        transforms: [strip, lower]
      mobile: {from: "phoneNumbers[type=mobile].value", transforms: [{mobile: CN}]}
      employee_type: {from: employmentType, map: {Full-time: regular, Intern: intern, "*": regular}}
      join_date: {from: hireDate, transforms: [{date: ["%d.%m.%Y"]}]}
      city: {value: 北京}                               # a constant
      status: {from: active, default: active}

**Paths.** ``a.b.c`` walks nested objects (keys match exactly, then
case-insensitively, as LDAP attribute names do); ``x[0]`` indexes a list;
``x[type=mobile]`` keeps the list items whose ``type`` is ``mobile``; a name
applied to a list maps over its items. ``"a.b"`` quotes a key that contains a
dot, and a path starting ``urn:`` is a SCIM extension attribute
(``urn:…:enterprise:2.0:User:manager.value``: the schema URN is everything up to
the last ``:``).

**Transforms** run in order: ``strip``, ``lower``, ``upper``, ``nfkc``, ``first``,
``{split: SEP}``, ``{join: SEP}``, ``{regex: PATTERN}`` (group 1, or the match),
``{bit: N}`` (integer flag test → true/false), ``{mobile: REGION}`` (E.164 with
``phonenumbers``), ``{date: [FORMAT, …]}``. ``map`` then translates values
(case-insensitive; ``"*"`` is the fallback; an unmapped value is an error) and
``default`` fills an empty result.

**Canonical coercion** happens last, per field: text fields take the first item
of a list; ``mobile`` is normalised to E.164 and ``email`` lower-cased by the rule every
connector shares (:mod:`connectors.contact`; region ``CN`` unless configured);
``join_date`` parses the default date formats; ``employee_type`` accepts 1–5 and
English or Chinese names; ``status`` accepts active/terminated, 在职/离职 and
booleans; id-like fields that look like Excel's scientific notation
(``1.38E+10``) are errors. Every problem is a ``(field, reason)`` pair that the
connector turns into an :class:`~orgsync.source.Issue` naming the record.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from connectors.contact import EXCEL_NUMBER, ContactProblem, normalize_email, normalize_mobile
from orgsync.errors import ConfigError
from orgsync.feishu.schema import CATALOG_CODES, CODE_PARSE, PROFILE, PROFILE_NAMES
from orgsync.identity import Identity
from orgsync.model import CUSTOM_ATTRS, NO_PROFILE, Department, Employee, EmployeeType, Status
from orgsync.options import did_you_mean
from orgsync.source import EntityKind, Issue

# The stable codes of job levels / families ride in the profile too (never sent: see
# orgsync.catalogs), so a rule for job_level_code makes renames patches of the entry.
_PROFILE_KEYS = (*(n for n in PROFILE_NAMES if n != CUSTOM_ATTRS), *CATALOG_CODES.values())
_CUSTOM = f"{CUSTOM_ATTRS}."  # a rule target custom_attrs.<name>: a custom attribute
EMPLOYEE_FIELDS = (*(f.name for f in dataclasses.fields(Employee) if f.name != "profile"),
                   *_PROFILE_KEYS)
DEPARTMENT_FIELDS = tuple(f.name for f in dataclasses.fields(Department))
_KEY_LISTS = frozenset(("department_keys", "deputy_leader_keys", "hrbp_keys",
                        "dotted_line_manager_keys"))
_BASE_EMPLOYEE_FIELDS = tuple(f for f in EMPLOYEE_FIELDS if f not in _PROFILE_KEYS)
_PROFILE_PARSERS = {**{f.name: f.parse for f in PROFILE if f.parse is not None},
                    **dict.fromkeys(CATALOG_CODES.values(), CODE_PARSE)}
_ID_FIELDS = frozenset({"key", "employee_no", "mobile", "manager_key", "parent_key", "leader_key",
                        "department_keys", "deputy_leader_keys", "hrbp_keys",
                        "dotted_line_manager_keys"})

EMPLOYEE_TYPES: dict[str, EmployeeType] = {
    **{str(int(t)): t for t in EmployeeType},
    **{t.name.lower(): t for t in EmployeeType},
    "正式": EmployeeType.REGULAR, "实习": EmployeeType.INTERN, "外包": EmployeeType.OUTSOURCED,
    "劳务": EmployeeType.CONTRACTOR, "顾问": EmployeeType.CONSULTANT,
}
STATUSES: dict[str, Status] = {
    "active": Status.ACTIVE, "terminated": Status.TERMINATED, "在职": Status.ACTIVE,
    "离职": Status.TERMINATED, "true": Status.ACTIVE, "false": Status.TERMINATED,
    "inactive": Status.TERMINATED,
}
DEFAULT_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d", "%d.%m.%Y")
_AMBIGUOUS_DATE = re.compile(r"\d{1,2}[/-]\d{1,2}[/-]\d{4}")
_EXCEL_EPOCH = date(1899, 12, 30)
_LIST_SEPARATOR = re.compile(r"[;；]")


class MappingProblem(Exception):
    """A value cannot be mapped; the message is the reason (without the field name)."""


# --- paths -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Step:
    """One step of a path: ``key`` (name), ``index`` (index), ``match`` (name = value), ``all``."""

    kind: Literal["key", "index", "match", "all"]
    name: str = ""
    index: int = 0
    value: str = ""


_SEGMENT = re.compile(r"""\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<name>[^.\[\]"']+))?""")
_SELECTOR = re.compile(r"\[\s*(?:(?P<index>-?\d+)|(?P<all>\*)|(?P<field>[^=\]]+?)\s*=\s*"
                       r"(?P<value>[^\]]*?))\s*\]")


@dataclass(frozen=True)
class FieldPath:
    """A compiled path into a raw record (see the module docstring for the syntax)."""

    text: str
    steps: tuple[_Step, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        """Compile ``text``; ValueError with the reason if it is not a path."""
        text = text.strip()
        if not text:
            raise ValueError("the path is empty")
        steps: list[_Step] = []
        rest = text
        if rest.startswith("urn:"):
            urn, _, attribute = rest.rpartition(":")
            if not urn or not attribute:
                raise ValueError(f"'{text}' is not a URN attribute path (urn:…:Schema:attribute)")
            steps.append(_Step("key", urn))
            rest = attribute
        pos = 0
        while pos < len(rest):
            m = _SEGMENT.match(rest, pos)
            assert m is not None  # the pattern can match the empty string
            name = m.group("dq") if m.group("dq") is not None else (
                m.group("sq") if m.group("sq") is not None else m.group("name"))
            pos = m.end()
            if name is not None:
                steps.append(_Step("key", name.strip() if m.group("name") else name))
            elif not steps or rest[pos:pos + 1] != "[":
                raise ValueError(f"'{text}': expected a field name at position {pos + 1}")
            while pos < len(rest) and rest[pos] == "[":
                s = _SELECTOR.match(rest, pos)
                if s is None:
                    raise ValueError(f"'{text}': bad selector at position {pos + 1} "
                                     "(use [0], [*] or [field=value])")
                if s.group("index") is not None:
                    steps.append(_Step("index", index=int(s.group("index"))))
                elif s.group("all"):
                    steps.append(_Step("all"))
                else:
                    steps.append(_Step("match", s.group("field").strip(),
                                       value=s.group("value").strip()))
                pos = s.end()
            if pos < len(rest):
                if rest[pos] != ".":
                    raise ValueError(f"'{text}': unexpected '{rest[pos]}' at position {pos + 1}")
                pos += 1
                if pos == len(rest):
                    raise ValueError(f"'{text}' ends with '.'")
        return cls(text, tuple(steps))

    @property
    def root(self) -> str | None:
        """The first field name (the LDAP attribute to request), if the path starts with one."""
        return self.steps[0].name if self.steps and self.steps[0].kind == "key" else None

    def get(self, record: Any) -> Any:
        """The value at this path, ``None`` when any step is missing."""
        value = record
        for step in self.steps:
            if value is None:
                return None
            value = _step(value, step)
        return value


def _step(value: Any, step: _Step) -> Any:
    kind = step.kind
    if kind == "key":
        if isinstance(value, list):
            flat: list[Any] = []
            for item in value:
                found = _step(item, step)
                if found is not None:
                    flat.extend(found if isinstance(found, list) else [found])
            return flat or None
        if not isinstance(value, Mapping):
            return None
        name = step.name
        if name in value:
            return value[name]
        folded = name.casefold()
        for k, v in value.items():
            if isinstance(k, str) and k.casefold() == folded:
                return v
        return None
    if not isinstance(value, list):
        value = [value]
    if kind == "index":
        index = step.index
        return value[index] if -len(value) <= index < len(value) else None
    if kind == "all":
        return value
    want = step.value.casefold()
    by = _Step("key", step.name)
    kept = [item for item in value if isinstance(item, Mapping)
            and _text(_step(item, by)).casefold() == want]
    return kept or None


def _text(value: Any) -> str:
    """A scalar as text: booleans as ``true``/``false``, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- sources: a path, a template or a constant -------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")


@dataclass(frozen=True)
class Template:
    """``"{givenName} {sn}"``: placeholders are paths; the result is stripped, empty → None."""

    text: str
    parts: tuple[str | FieldPath, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """Compile ``text``; ValueError naming a bad placeholder."""
        parts: list[str | FieldPath] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            parts.append(text[pos:m.start()])
            if m.group(0) in ("{{", "}}"):
                parts.append(m.group(0)[0])
            else:
                parts.append(FieldPath.parse(m.group(1)))
            pos = m.end()
        parts.append(text[pos:])
        if not any(isinstance(p, FieldPath) for p in parts):
            raise ValueError(f"template '{text}' has no {{field}} placeholder")
        return cls(text, tuple(p for p in parts if p != ""))

    def get(self, record: Any) -> str | None:
        """The filled template; None when every placeholder is empty."""
        out: list[str] = []
        filled = False
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.get(record)
            if isinstance(value, list):
                value = value[0] if value else None
            text = _text(value).strip()
            filled = filled or bool(text)
            out.append(text)
        return "".join(out).strip() or None if filled else None


@dataclass(frozen=True)
class Constant:
    """A fixed value (``{value: 北京}``)."""

    value: Any

    def get(self, record: Any) -> Any:
        """The constant, whatever the record."""
        return self.value


Source = FieldPath | Template | Constant


def parse_source(text: str) -> Source:
    """A template when ``text`` has a ``{placeholder}``, else a path."""
    if _PLACEHOLDER.search(text) and not text.strip().startswith("urn:"):
        return Template.parse(text)
    return FieldPath.parse(text)


# --- transforms --------------------------------------------------------------------------------

Transform = Callable[[Any], Any]


def _each(fn: Callable[[str], Any]) -> Transform:
    """Apply a text function to a value or to every item of a list."""

    def apply(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [fn(_text(v)) for v in value if v is not None]
        return fn(_text(value))

    return apply


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _split(sep: str) -> Transform:
    def split(value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        out = [p.strip() for v in items if v is not None for p in _text(v).split(sep)]
        return [p for p in out if p] or None

    return split


def _join(sep: str) -> Transform:
    def join(value: Any) -> Any:
        if isinstance(value, list):
            return sep.join(_text(v) for v in value if v is not None) or None
        return value

    return join


def _regex(pattern: str) -> Transform:
    compiled = re.compile(pattern)

    def extract(text: str) -> str | None:
        m = compiled.search(text)
        if m is None:
            return None
        return m.group(1) if compiled.groups else m.group(0)

    return _each(extract)


def _bit(mask: int) -> Transform:
    def test(text: str) -> bool:
        try:
            return int(text.strip()) & mask != 0
        except ValueError:
            raise MappingProblem(f"'{text}' is not an integer (for a bit test)") from None

    return _each(test)


def _mobile_value(text: str, region: str) -> str:
    """:func:`connectors.contact.normalize_mobile`, its problem as a MappingProblem."""
    try:
        return normalize_mobile(text, region)
    except ContactProblem as exc:
        raise MappingProblem(str(exc)) from None


def _mobile(region: str) -> Transform:
    return _each(lambda text: _mobile_value(text, region) if text.strip() else None)


def parse_date(value: Any, formats: Sequence[str] = DEFAULT_DATE_FORMATS) -> date:
    """A date from text in one of ``formats``, an ISO timestamp, or an Excel serial day.

    ``3/5/2024`` is refused unless a format in ``formats`` reads it (it is
    5 March or 3 May depending on the country). MappingProblem otherwise.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = unicodedata.normalize("NFKC", _text(value)).strip()
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ].+", text):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    if re.fullmatch(r"\d{5}(?:\.0+)?", text) and 20000 <= float(text) <= 80000:
        return _EXCEL_EPOCH + timedelta(days=int(float(text)))
    if _AMBIGUOUS_DATE.fullmatch(text):
        raise MappingProblem(f"'{text}' is ambiguous (day/month or month/day?); name the "
                             "format, e.g. transforms: [{date: ['%d/%m/%Y']}]")
    raise MappingProblem(f"'{text}' is not a date in a known format "
                         f"({', '.join(formats)}, ISO timestamps, Excel serial days)")


def _no_date(value: Any) -> bool:
    """Empty, or an all-zero placeholder such as BambooHR's ``0000-00-00``."""
    return not isinstance(value, date) and _text(value).strip().strip("0-/. :T") == ""


def _date(formats: Sequence[str]) -> Transform:
    def transform(value: Any) -> Any:
        value = _first(value)
        return None if _no_date(value) else parse_date(value, formats)

    return transform


_SIMPLE: dict[str, Transform] = {
    "strip": _each(str.strip),
    "lower": _each(str.lower),
    "upper": _each(str.upper),
    "nfkc": _each(lambda s: unicodedata.normalize("NFKC", s)),
    "first": _first,
    "mobile": _mobile("CN"),
    "date": _date(DEFAULT_DATE_FORMATS),
}
TRANSFORM_NAMES = (*_SIMPLE, "split", "join", "regex", "bit")


def _transform(spec: Any) -> Transform:
    """One transform from its config form; ValueError with the reason."""
    if isinstance(spec, str):
        if spec in _SIMPLE:
            return _SIMPLE[spec]
        raise ValueError(f"unknown transform '{spec}' (known: {', '.join(TRANSFORM_NAMES)})")
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ValueError("a transform is a name or a one-key mapping such as {split: ';'}")
    (name, arg), = spec.items()
    if name in ("split", "join") and isinstance(arg, str) and arg:
        return _split(arg) if name == "split" else _join(arg)
    if name == "regex" and isinstance(arg, str):
        try:
            return _regex(arg)
        except re.error as exc:
            raise ValueError(f"bad regex: {exc}") from None
    if name == "bit" and isinstance(arg, int) and not isinstance(arg, bool) and arg > 0:
        return _bit(arg)
    if name == "mobile" and isinstance(arg, str) and len(arg) == 2:
        return _mobile(arg.upper())
    if name == "date":
        formats = [arg] if isinstance(arg, str) else arg
        if isinstance(formats, list) and formats and all(isinstance(f, str) for f in formats):
            return _date(tuple(formats))
    raise ValueError(f"bad argument {arg!r} for transform '{name}'")


# --- rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRule:
    """Where one canonical field comes from and how it is cleaned."""

    sources: tuple[Source, ...]
    transforms: tuple[Transform, ...] = ()
    value_map: Mapping[str, Any] | None = None
    default: Any = None

    def roots(self) -> set[str]:
        """The top-level field names this rule reads (for sources that fetch by name)."""
        out: set[str] = set()
        for source in self.sources:
            paths = [source] if isinstance(source, FieldPath) else (
                [p for p in source.parts if isinstance(p, FieldPath)]
                if isinstance(source, Template) else [])
            out.update(r for r in (p.root for p in paths) if r)
        return out

    def value(self, record: Any) -> Any:
        """The mapped value (before canonical coercion); MappingProblem on a bad value."""
        value: Any = None
        for source in self.sources:
            value = _clean(source.get(record))
            if value is not None:
                break
        for transform in self.transforms:
            value = _clean(transform(value))
        if self.value_map is not None and value is not None:
            value = _clean(self._mapped(value))
        return self.default if value is None else value

    def _mapped(self, value: Any) -> Any:
        assert self.value_map is not None
        if isinstance(value, list):
            return [self._mapped(v) for v in value]
        found = self.value_map.get(_text(value).strip().casefold(), _UNMAPPED)
        if found is _UNMAPPED:
            found = self.value_map.get("*", _UNMAPPED)
        if found is _UNMAPPED:
            known = ", ".join(f"'{k}'" for k in list(self.value_map)[:8])
            raise MappingProblem(f"'{_text(value)}' is not in the value map (known: {known})")
        return found


_UNMAPPED: Any = object()


def _clean(value: Any) -> Any:
    """Strip text; empty text, empty lists and lists of nothing become None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        items = [c for c in (_clean(v) for v in value) if c is not None]
        return items or None
    return value


def parse_rule(spec: Any) -> FieldRule:
    """A rule from its config form (path/template string or mapping); ValueError if bad."""
    if isinstance(spec, str):
        return FieldRule((parse_source(spec),))
    if not isinstance(spec, Mapping):
        raise ValueError("expected a field path, a template or a mapping with 'from'")
    unknown = set(spec) - {"from", "template", "value", "transforms", "map", "default"}
    if unknown:
        raise ValueError(f"unknown key '{sorted(map(str, unknown))[0]}' (known: from, template, "
                         "value, transforms, map, default)")
    sources: list[Source] = []
    origin = spec.get("from")
    for item in origin if isinstance(origin, list) else ([] if origin is None else [origin]):
        if not isinstance(item, str):
            raise ValueError("'from' takes a field path or a list of them")
        sources.append(parse_source(item))
    if "template" in spec:
        if not isinstance(spec["template"], str):
            raise ValueError("'template' takes a text with {field} placeholders")
        sources.append(Template.parse(spec["template"]))
    if "value" in spec:
        sources.append(Constant(spec["value"]))
    raw_transforms = spec.get("transforms") or []
    if not isinstance(raw_transforms, list):
        raw_transforms = [raw_transforms]
    value_map = spec.get("map")
    if value_map is not None:
        if not isinstance(value_map, Mapping) or not value_map:
            raise ValueError("'map' takes a non-empty mapping of source value → value")
        value_map = {_text(k).strip().casefold(): v for k, v in value_map.items()}
    if not sources and "default" not in spec:
        raise ValueError("needs 'from', 'template', 'value' or 'default'")
    return FieldRule(tuple(sources), tuple(_transform(t) for t in raw_transforms), value_map,
                     spec.get("default"))


def parse_rules(spec: Any, *, entity: EntityKind, base: Mapping[str, FieldRule] | None = None,
                file: str, key: str) -> dict[str, FieldRule]:
    """A field → rule table from config, on top of ``base`` (a preset); ConfigError if bad.

    A field set to ``null`` removes the preset's rule for it.
    """
    fields = EMPLOYEE_FIELDS if entity == "employee" else DEPARTMENT_FIELDS
    rules = dict(base or {})
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ConfigError("expected a mapping of canonical field → source", file=file, key=key,
                          remedy="e.g. name: displayName")
    for name, rule_spec in spec.items():
        if name not in fields and not (entity == "employee" and _custom_name(str(name))):
            raise ConfigError("unknown canonical field", file=file, key=f"{key}.{name}",
                              remedy=did_you_mean(str(name), fields)
                              or f"known: {', '.join(fields)}")
        if rule_spec is None:
            rules.pop(name, None)
            continue
        try:
            rules[name] = parse_rule(rule_spec)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, key=f"{key}.{name}",
                              remedy="see the field mapping section of config/example.yaml") from None
    if "key" not in rules:
        raise ConfigError("no rule for 'key' (the stable source id)", file=file, key=f"{key}.key",
                          remedy="e.g. key: id")
    return rules


def rules(spec: Mapping[str, Any], entity: EntityKind) -> dict[str, FieldRule]:
    """Preset tables: compile a literal spec (a bug in it is a programming error)."""
    return parse_rules(spec, entity=entity, file="<preset>", key=f"preset.{entity}")


# --- records -----------------------------------------------------------------------------------

Problems = list[tuple[str | None, str]]


@dataclass
class Mapped:
    """A raw record mapped to canonical values: its key (None if missing) and problems."""

    key: str | None
    values: dict[str, Any]
    problems: Problems = field(default_factory=list)


def map_record(record: Any, table: Mapping[str, FieldRule], *, region: str = "CN") -> Mapped:
    """Apply every rule of ``table`` to ``record`` and coerce to canonical types."""
    values: dict[str, Any] = {}
    problems: Problems = []
    for name, rule in table.items():
        try:
            values[name] = _coerce(name, rule.value(record), region)
        except MappingProblem as exc:
            problems.append((name, str(exc)))
            values[name] = None
    key = values.get("key")
    return Mapped(key if isinstance(key, str) and key else None, values, problems)


def _coerce(name: str, value: Any, region: str) -> Any:
    """The canonical form of ``value`` for field ``name``; MappingProblem if impossible."""
    if value is None:
        return None
    if name in _KEY_LISTS:
        items = value if isinstance(value, list) else _LIST_SEPARATOR.split(_text(value))
        keys = tuple(_text(v).strip() for v in items if _text(v).strip())
        for k in keys:
            _excel_guard(k)
        if name in _PROFILE_PARSERS:  # a profile value: JSON-able, none when empty
            return list(dict.fromkeys(keys)) or None
        return keys
    if name == "join_date":
        first = _first(value)
        return None if _no_date(first) else parse_date(first)
    if isinstance(value, list):
        value = value[0]
    if name == "employee_type":
        if isinstance(value, EmployeeType):
            return value
        found = EMPLOYEE_TYPES.get(unicodedata.normalize("NFKC", _text(value)).strip().lower())
        if found is None:
            raise MappingProblem(f"'{_text(value)}' is not an employee type (1-5, regular, intern, "
                                 "outsourced, contractor, consultant); map it with 'map'")
        return found
    if name == "status":
        if isinstance(value, Status):
            return value
        status = STATUSES.get(_text(value).strip().lower())
        if status is None:
            raise MappingProblem(f"'{_text(value)}' is not active or terminated; map it with 'map'")
        return status
    if name == "order":
        text = unicodedata.normalize("NFKC", _text(value)).strip()
        if not text.isdigit():
            raise MappingProblem(f"'{_text(value)}' is not a non-negative whole number")
        return int(text)
    if isinstance(value, dict | bytes):
        raise MappingProblem(f"is {type(value).__name__}, not text; pick a field inside it")
    text = _text(value).strip()
    parse = _PROFILE_PARSERS.get(name)
    if parse is not None:
        try:
            return parse(text) if text else None
        except ValueError as exc:
            raise MappingProblem(str(exc)) from None
    if name == "mobile":
        return _mobile_value(text, region) if text else None
    if name in _ID_FIELDS:
        _excel_guard(text)
    if name == "email":
        return normalize_email(text) if text else None
    return text or None


def _excel_guard(text: str) -> None:
    if EXCEL_NUMBER.fullmatch(text):
        raise MappingProblem(f"'{text}' looks like a number Excel turned into scientific "
                             "notation; the digits are lost, export the column as text")


def _known(values: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The canonical values that are set (the others take the model's defaults)."""
    return {name: v for name in fields if (v := values.get(name)) is not None}


def employee_from(values: Mapping[str, Any], key: str) -> Employee:
    """An :class:`Employee` from coerced values (missing values take the model's defaults);
    ``custom_attrs.<name>`` values go into the profile's custom attributes by name."""
    profile = _known(values, _PROFILE_KEYS)
    custom = {n: v for f, v in values.items() if v and (n := _custom_name(f))}
    if custom:
        profile[CUSTOM_ATTRS] = custom
    return Employee(**{**_known(values, _BASE_EMPLOYEE_FIELDS), "key": key,
                       "name": values.get("name") or "",
                       "department_keys": tuple(values.get("department_keys") or ()),
                       "profile": profile or NO_PROFILE})


def _custom_name(target: str) -> str:
    """The attribute a ``custom_attrs.<name>`` rule target names ("" for other targets)."""
    return target.removeprefix(_CUSTOM) if target.startswith(_CUSTOM) else ""


def profile_fields(rules: Mapping[str, FieldRule]) -> frozenset[str]:
    """The profile fields a mapping provides (a rule each): the ones orgsync manages."""
    given = frozenset(PROFILE_NAMES).intersection(rules)
    return given | {CUSTOM_ATTRS} if any(_custom_name(r) for r in rules) else given


def department_from(values: Mapping[str, Any], key: str) -> Department:
    """A :class:`Department` from coerced values (missing values take the model's defaults)."""
    return Department(**{**_known(values, DEPARTMENT_FIELDS), "key": key,
                         "name": values.get("name") or ""})


# --- collecting a whole source -----------------------------------------------------------------


@dataclass
class Collected:
    """Mapped records of one entity kind, with issues and held keys, duplicates resolved."""

    records: dict[str, Mapped] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    #: Identifying values of every held row (employees), so a held row still accounts for
    #: the person it belongs to (see orgsync.identity.resolve).
    held_rows: list[Identity] = field(default_factory=list)


def collect(items: Iterable[tuple[str, Mapped]], entity: EntityKind) -> Collected:
    """Gather ``(where, mapped)`` pairs: hold records with problems and every repeated key.

    A record without a key is reported (nothing to hold). A key seen twice is held
    in full, with an issue at each position naming the others.
    """
    out = Collected()
    positions: dict[str, list[str]] = {}
    people = entity == "employee"
    for where, mapped in items:
        key = mapped.key
        if key is None:
            reason = next((r for f, r in mapped.problems if f == "key"), "the key is empty")
            out.issues.append(Issue(entity, None, "key", reason, "error", where))
            if people:
                out.held_rows.append(_identity(mapped, where))
            continue
        positions.setdefault(key, []).append(where)
        if len(positions[key]) > 1:
            if people:
                out.held_rows.append(_identity(mapped, where))
            continue
        if mapped.problems:
            out.issues.extend(Issue(entity, key, f, r, "error", where) for f, r in mapped.problems)
            out.held.add(key)
            if people:
                out.held_rows.append(_identity(mapped, where))
        else:
            out.records[key] = mapped
            out.where[key] = where
    for key, places in positions.items():
        if len(places) < 2:
            continue
        first = out.records.pop(key, None)
        out.where.pop(key, None)
        out.held.add(key)
        if people and first is not None:  # the later rows are in already
            out.held_rows.append(_identity(first, places[0]))
        for place in places:
            others = ", ".join(p for p in places if p != place)
            out.issues.append(Issue(entity, key, "key", f"key '{key}' is also at {others}",
                                    "error", place))
    return out


def _identity(mapped: Mapped, where: str) -> Identity:
    email, mobile = mapped.values.get("email"), mapped.values.get("mobile")
    return Identity(mapped.key, email if isinstance(email, str) else None,
                    mobile if isinstance(mobile, str) else None, where,
                    usable=not any(f == "key" for f, _ in mapped.problems))


def resolve_references(collected: Collected, field_name: str, index: Mapping[str, str],
                       *, entity: EntityKind, describe: str) -> None:
    """Replace each record's ``field_name`` reference by the key ``index`` maps it to.

    A reference ``index`` does not know is cleared with a warning (the record
    proceeds): e.g. a manager DN outside the search base.
    """
    for key, mapped in collected.records.items():
        ref = mapped.values.get(field_name)
        if ref is None:
            continue
        target = index.get(ref)
        if target is None:
            collected.issues.append(Issue(
                entity, key, field_name, f"{describe} '{ref}' is not among the records read",
                "warning", collected.where.get(key)))
        mapped.values[field_name] = target


def departments_from_paths(paths: Iterable[str], separator: str = "/") -> dict[str, Department]:
    """Departments implied by path texts such as ``研发中心/平台部/基础架构组``.

    Each prefix becomes a department keyed by its normalised path (segments
    stripped, empty ones dropped), named by its last segment, with the shorter
    prefix as its parent. Keys change when a department is renamed: sources with
    stable department codes should map them instead.
    """
    out: dict[str, Department] = {}
    for path in paths:
        parent: str | None = None
        for segment in split_path(path, separator):
            key = segment if parent is None else f"{parent}{separator}{segment}"
            if key not in out:
                out[key] = Department(key=key, name=segment, parent_key=parent)
            parent = key
    return out


Level = tuple[str, str]
"""One level of a department path: (department key, name)."""


def path_levels(paths: str, codes: str | None, separator: str = "/") -> list[list[Level]]:
    """The levels of each ``;``-separated path in a cell, top first.

    Without ``codes`` each level is keyed by its path prefix (as
    :func:`departments_from_paths` keys it). With ``codes`` — the same shape,
    one code per level (``D01/D0105`` for ``研发中心/平台部``) — each level is
    keyed by its code, so a renamed department keeps its key. MappingProblem
    when the shapes differ; it quotes both cells.
    """
    texts = [t.strip() for t in _LIST_SEPARATOR.split(paths) if t.strip()]
    if codes is None:
        out = []
        for text in texts:
            names = split_path(text, separator)
            out.append([(separator.join(names[:i + 1]), n) for i, n in enumerate(names)])
        return out
    code_texts = [t.strip() for t in _LIST_SEPARATOR.split(codes) if t.strip()]
    if len(code_texts) != len(texts):
        raise MappingProblem(f"'{codes}' has {len(code_texts)} code path(s) but '{paths}' has "
                             f"{len(texts)} department path(s); give one code path per path")
    chains = []
    for text, code_text in zip(texts, code_texts, strict=True):
        names, keys = split_path(text, separator), split_path(code_text, separator)
        if len(names) != len(keys):
            raise MappingProblem(
                f"'{code_text}' has {len(keys)} level(s) but the path '{text}' has "
                f"{len(names)}; give one code per level, separated by '{separator}'")
        chains.append(list(zip(keys, names, strict=True)))
    return chains


def departments_from_levels(chains: Iterable[Sequence[Level]]
                            ) -> tuple[dict[str, Department], dict[str, str]]:
    """Departments implied by path levels (see :func:`path_levels`), and conflicts.

    Each level becomes a department with the level above as its parent. A key
    that two rows place differently (another name or parent: a code reused, or
    half an export renamed) is a conflict: ``{key: reason}``, first placement kept.
    """
    out: dict[str, Department] = {}
    conflicts: dict[str, str] = {}
    for chain in chains:
        parent: str | None = None
        for key, name in chain:
            found = out.get(key)
            if found is None:
                out[key] = Department(key=key, name=name, parent_key=parent)
            elif (found.name, found.parent_key) != (name, parent) and key not in conflicts:
                conflicts[key] = (
                    f"code '{key}' is '{found.name}' under {found.parent_key or 'top level'} on "
                    f"one row and '{name}' under {parent or 'top level'} on another; one code "
                    "per department")
            parent = key
    return out, conflicts


def split_path(path: str, separator: str = "/") -> list[str]:
    """The non-empty, stripped segments of a department path."""
    return [s.strip() for s in path.split(separator) if s.strip()]


def path_key(path: str, separator: str = "/") -> str | None:
    """The department key :func:`departments_from_paths` gives ``path`` (None if empty)."""
    return separator.join(split_path(path, separator)) or None
