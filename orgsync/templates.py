"""Message templates: parsed and checked when the config loads, rendered per event.

A template is ``{msg_type: text | post | interactive, zh: …, en: …}``:

* ``text``: ``zh`` / ``en`` are strings;
* ``post``: each is a post body (``{title, content: [[{tag: text, text: …}, …]]}``),
  sent as ``{"zh_cn": …, "en_us": …}``;
* ``interactive``: each is a whole card (``{header, elements}``); a card has one
  language, so ``both`` sends the Chinese card (the English one when only it is given).

Every string inside may use ``{name}``-style variables (``{{`` for a literal brace):
:data:`BUILTIN_VARIABLES` everywhere, plus an event's own (:data:`EVENT_VARIABLES`:
``{old_department}``, ``{new_department}`` and ``{transfer_date}`` in transfer notes,
``{leave_date}`` in leaver notes, ``{leave_kind}``, ``{leave_start}``, ``{leave_end}`` and
``{leave_days}`` in leave notes). An unknown variable, an attribute or index
(``{a.b}``, ``{a[0]}``) or a conversion is a :class:`TemplateError` naming the dotted
path — at config load, never mid-run.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

MsgType = Literal["text", "post", "interactive"]
Language = Literal["zh", "en", "both"]
MSG_TYPES: tuple[str, ...] = ("text", "post", "interactive")

#: Variables every event offers (plus the names of ``notify.links``).
BUILTIN_VARIABLES = frozenset({"name", "en_name", "employee_id", "email", "job_title",
                               "department", "manager", "start_date"})

_TRANSFER_VARIABLES = frozenset({"old_department", "new_department", "transfer_date"})
#: Variables only some events offer, on top of :data:`BUILTIN_VARIABLES`: a transfer's
#: department paths before and after and its date, a leaver's last day in the directory.
EVENT_VARIABLES: Mapping[str, frozenset[str]] = {
    "transfer_note": _TRANSFER_VARIABLES,
    "transfer_welcome": _TRANSFER_VARIABLES,
    "leaver_note": frozenset({"leave_date"}),
    "leave_note": frozenset({"leave_kind", "leave_start", "leave_end", "leave_days"}),
}
#: Every variable name some event offers (``notify.links`` names may not shadow one).
ALL_VARIABLES = BUILTIN_VARIABLES.union(*EVENT_VARIABLES.values())


def event_variables(event: str, links: frozenset[str] = frozenset()) -> frozenset[str]:
    """The variables a template for ``event`` may use: the built-in ones, the event's own
    (:data:`EVENT_VARIABLES`) and the ``links`` names."""
    return BUILTIN_VARIABLES | EVENT_VARIABLES.get(event, frozenset()) | links


class TemplateError(ValueError):
    """A template problem; ``path`` is the dotted place inside the template (``zh.title``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Template:
    """A checked template; ``zh`` / ``en`` are ``None`` when not given (at least one is)."""

    msg_type: MsgType
    zh: Any = None
    en: Any = None

    def render(self, variables: Mapping[str, str], language: Language) -> dict[str, Any]:
        """The message ``content`` object (serialize it as JSON to send).

        ``variables`` must cover every name the template uses (missing ones render empty).
        """
        values = _Defaulting(variables)
        zh = _fill(self.zh, values) if self.zh is not None else None
        en = _fill(self.en, values) if self.en is not None else None
        if language == "zh" and zh is not None:
            en = None
        elif language == "en" and en is not None:
            zh = None
        if self.msg_type == "text":
            return {"text": "\n\n".join(t for t in (zh, en) if t)}
        if self.msg_type == "post":
            body: dict[str, Any] = {}
            if zh is not None:
                body["zh_cn"] = zh
            if en is not None:
                body["en_us"] = en
            return body
        card = zh if zh is not None else en
        assert isinstance(card, dict)
        return card


def parse_template(raw: Any, variables: frozenset[str]) -> Template:
    """Check ``raw`` (the YAML mapping) and return the :class:`Template`.

    Raises :class:`TemplateError` for a wrong shape or a variable not in ``variables``.
    """
    if not isinstance(raw, Mapping):
        raise TemplateError("", "expected a mapping with msg_type, zh and/or en")
    unknown = sorted(set(map(str, raw)) - {"msg_type", "zh", "en"})
    if unknown:
        raise TemplateError(unknown[0], "unknown key (known: msg_type, zh, en)")
    msg_type = raw.get("msg_type", "text")
    if msg_type not in MSG_TYPES:
        raise TemplateError("msg_type", f"'{msg_type}' is not one of {', '.join(MSG_TYPES)}")
    if raw.get("zh") is None and raw.get("en") is None:
        raise TemplateError("zh", "give the message in 'zh', 'en' or both")
    for lang in ("zh", "en"):
        body = raw.get(lang)
        if body is None:
            continue
        if msg_type == "text" and not isinstance(body, str):
            raise TemplateError(lang, "a text message is a string")
        if msg_type == "post" and not (isinstance(body, Mapping)
                                       and isinstance(body.get("content"), list)):
            raise TemplateError(lang, "a post is a mapping with 'content': a list of lines")
        if msg_type == "interactive" and not (isinstance(body, Mapping)
                                              and isinstance(body.get("elements"), list)):
            raise TemplateError(lang, "a card is a mapping with 'elements' (and a 'header')")
        for path, text in _strings(body, lang):
            _check(text, path, variables)
        try:
            json.dumps(body, ensure_ascii=False)
        except (TypeError, ValueError):
            raise TemplateError(lang, "holds values that are not JSON") from None
    return Template(msg_type, _plain(raw.get("zh")), _plain(raw.get("en")))


def _check(text: str, path: str, variables: frozenset[str]) -> None:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(path, f"malformed braces: {exc} (write {{{{ for a literal brace)"
                            ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(path, f"'{{{name}}}' is not a plain variable name")
        if name not in variables:
            raise TemplateError(path, f"unknown variable '{{{name}}}' (known: "
                                      f"{', '.join(sorted(variables))})")
        if conversion or spec:
            raise TemplateError(path, f"'{{{name}}}' may not carry a conversion or format")


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")


def _plain(node: Any) -> Any:
    """A deep copy with plain dicts and lists (YAML may hand in other mappings)."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _fill(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return node.format_map(values)
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    return node


class _Defaulting(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""
