"""structlog setup: readable on a terminal, JSON in a container; secrets and PII kept out.

Two processors guard every event before it is rendered:

* :func:`redact_secrets` replaces the value of any key that names a secret
  (``app_secret``, ``token``, ``authorization`` …) with ``"***"``;
* :func:`mask_pii` (on unless configured off) masks mobiles and emails found in
  any string value: ``+86138****5678``, ``z***@example.com``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

_SECRET_KEYS = re.compile(r"secret|token|password|authorization|credential", re.I)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A phone number: ``+`` and 7-15 digits (spaces/dashes allowed), or a bare mainland
# mobile (optionally ``86``-prefixed), never part of a longer run of letters/digits —
# so Feishu log ids, run ids and dates stay readable.
_MOBILE = re.compile(
    r"(?<![\w+])(?:\+\d(?:[ -]?\d){6,14}|(?:86[ -]?)?1[3-9]\d(?:[ -]?\d){8})(?![\w])")


def _mask_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    keep_head = digits[4] if text.startswith("+") else digits[2]
    keep_tail = digits[-3]
    return text[:keep_head + 1] + "****" + text[keep_tail:]


def mask_text(text: str) -> str:
    """Mask every email and phone number in ``text``: ``+86138****000``, ``138****000``."""
    text = _EMAIL.sub(r"\1***\2", text)
    return _MOBILE.sub(_mask_number, text)


def redact_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """Replace values of secret-named keys with ``***``, in nested dicts and lists too."""
    for k in list(event):
        event[k] = "***" if _SECRET_KEYS.search(str(k)) else _redact(event[k])
    return event


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: "***" if _SECRET_KEYS.search(str(k)) else _redact(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
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
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


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
    if json_out:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", bool)()))
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
