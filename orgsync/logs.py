"""structlog setup: readable on a terminal, JSON in a container; secrets and PII kept out.

Two processors guard every event before it is rendered:

* :func:`redact_secrets` replaces the value of any key that names a secret
  (``app_secret``, ``token``, ``authorization`` …) with ``"***"``, and masks
  userinfo and query values of every URL (:func:`orgsync.urls.mask_urls`);
* :func:`mask_pii` (on unless configured off) masks mobiles and emails found in
  any string value: ``+86138****678``, ``z***@example.com``.

The rendered line is scrubbed again (URLs always, PII when masking is on), so
whatever a renderer turns into text itself — reprs, tracebacks — is covered too.
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

from orgsync.urls import mask_urls

_SECRET_KEYS = re.compile(r"secret|token|password|authorization|credential", re.I)
# An email, the local part in any script (张三@example.com) and an internationalised domain.
_EMAIL = re.compile(r"(?<![\w.%+-])([\w%+-])[\w.%+-]*(@(?:[\w-]+\.)+[\w-]{2,})")
# Phone numbers, in every form the connectors accept (``normalize_mobile``: anything
# phonenumbers reads, full-width digits included). A number must not touch an ASCII
# letter or digit, so Feishu log ids, hex ids, ``E00030`` and run ids stay readable,
# while ``_`` and CJK text may touch it (``E1_13800138000``, ``手机13800138000``).
_ALONE_BEFORE, _ALONE_AFTER = r"(?<![A-Za-z\d])", r"(?![A-Za-z\d])"
# +<country code> or 00<country code>, separators and brackets allowed: +1 (415) 555-0100
_INTERNATIONAL = re.compile(
    _ALONE_BEFORE + r"(?:\(?\+|00(?![0０]))\d(?:[ \-.()\u00a0]{0,2}\d){5,16}\)?" + _ALONE_AFTER)
# a mainland mobile, optionally 86-prefixed, spaced or dashed: 138 0013 8000
_MAINLAND = re.compile(_ALONE_BEFORE + r"(?:[8８][6６][ \-]?)?\d{3}(?:[ \-]?\d){8}" + _ALONE_AFTER)
# a local number in groups, as other regions write them: (415) 555-0100, 07700 900123
_GROUPED = re.compile(r"(?<![A-Za-z\d.:])(?:\(\d{2,5}\)[ \-]?|\d{2,5}[ \-])\d{3,}(?:[ \-]\d{3,}){0,3}"
                      r"(?![A-Za-z\d.:])")
_MAINLAND_DIGITS = re.compile(r"(?:86)?1[3-9]\d{9}")


def _digits(text: str) -> tuple[list[int], str]:
    """Positions of the digits in ``text`` and the digits themselves as ASCII."""
    where = [i for i, ch in enumerate(text) if ch.isdigit()]
    return where, "".join(str(unicodedata.digit(text[i])) for i in where)


def _hide(text: str, where: list[int], head: int) -> str:
    """``text`` with all but ``head`` leading and 3 trailing digits replaced by ``****``.

    At least five digits are always hidden, however short the number.
    """
    n = len(where)
    tail = min(3, max(0, n - 5))
    head = max(0, min(head, n - 5 - tail))
    start = where[head - 1] + 1 if head else where[0]
    return text[:start].rstrip(" -.\u00a0") + "****" + (text[where[n - tail]:] if tail else "")


def _international(match: re.Match[str]) -> str:
    text = match.group(0)
    where, digits = _digits(text)
    prefix = 2 if digits.startswith("00") and not text.lstrip("(").startswith("+") else 0
    if not 7 <= len(digits) - prefix <= 15:
        return text
    return _hide(text, where, 5 + prefix)


def _mainland(match: re.Match[str]) -> str:
    text = match.group(0)
    where, digits = _digits(text)
    if not _MAINLAND_DIGITS.fullmatch(digits):
        return text
    return _hide(text, where, 5 if len(digits) == 13 else 3)


def _grouped(match: re.Match[str]) -> str:
    text = match.group(0)
    where, _ = _digits(text)
    return _hide(text, where, 3) if 10 <= len(where) <= 12 else text


def mask_text(text: str) -> str:
    """Mask every email and phone number in ``text``: ``z***@example.com``, ``138****000``."""
    if "@" in text:
        text = _EMAIL.sub(r"\1***\2", text)
    if not any(ch.isdigit() for ch in text):
        return text
    text = _INTERNATIONAL.sub(_international, text)
    text = _MAINLAND.sub(_mainland, text)
    return _GROUPED.sub(_grouped, text)


def redact_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """Replace values of secret-named keys with ``***``, in nested dicts and lists too."""
    for k in list(event):
        event[k] = "***" if _SECRET_KEYS.search(str(k)) else _redact(event[k])
    return event


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return mask_urls(value)
    if isinstance(value, Mapping):
        return {k: "***" if _SECRET_KEYS.search(str(k)) else _redact(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(v) for v in value]
    return value


def mask_pii(_logger: Any, _name: str, event: MutableMapping[str, Any]
             ) -> MutableMapping[str, Any]:
    """Mask emails and mobiles in string values, in nested dicts and lists too."""
    for k, v in list(event.items()):
        event[k] = _mask(v)
    return event


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {_mask(k): _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_text(repr(value))  # what the renderers would print (exceptions, objects)


def _scrubbed(renderer: Any, *, pii: bool) -> Any:
    """``renderer`` whose output is scrubbed once more, as text.

    The processors above see only plain values; this catches what the renderer turns
    into text itself: objects' reprs, exceptions and tracebacks.
    """
    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        out = renderer(logger, name, event)
        if isinstance(out, str):
            out = mask_urls(out)
            return mask_text(out) if pii else out
        return out

    return render


def configure(*, fmt: Literal["auto", "console", "json"] = "auto", level: str = "info",
              mask: bool = True, stream: Any = None) -> None:
    """Configure structlog for the process (CLI and daemon call this once)."""
    out = stream or sys.stderr
    json_out = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    if mask:
        processors.append(mask_pii)
    renderer: Any
    if json_out:
        processors.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", bool)())
    processors.append(_scrubbed(renderer, pii=mask))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)),
        logger_factory=(structlog.PrintLoggerFactory(file=stream) if stream is not None
                        else _stderr_logger),
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger on whatever ``sys.stderr`` is *now* (it may be swapped after configure)."""
    return structlog.PrintLogger(file=sys.stderr)
