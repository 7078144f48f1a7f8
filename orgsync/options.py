"""Reading the config file's keys: one dialect for orgsync's sections and every connector.

:class:`Section` reads one mapping of the config key by key; :func:`interpolate`
fills in ``${VAR}`` before anything is read. The rules, the same for every key
in the file (``feishu.timeout`` as ``source.auth.token``):

* **Null is absent**: ``key: null`` (or ``key:``) reads as if the key were not
  written, so the default applies and an unknown null key is no error (a user
  removes a connector preset's key with ``key: null``). A few keys give null a
  meaning of their own (``daemon.full_resync_cron: null`` turns full resyncs
  off); they ask :meth:`Section.given`.
* **Text is accepted for scalars**, because ``${VAR}`` always gives text:
  numbers as ``"2.5"``, booleans as ``true/false``, ``yes/no``, ``on/off``,
  ``1/0`` (any case), durations as ``90``, ``"30s"``, ``"1h30m"``. Where text is
  expected, a YAML number or boolean is refused (quote it: ``0001`` would lose
  its zeros). Text is stripped; empty text is refused.
* **Choices** match case-insensitively and come back as the choice is spelled.
* **Lists** take one value or a list of values.
* **Paths** (``*_file`` included) expand ``~`` and resolve against the config
  file's directory.
* **Secrets**: ``key`` or ``key_file`` (whose content is read and stripped; it
  must be UTF-8 text of at most 64 KiB), never both; a secret's value never
  appears in a message.
* **Unknown keys** are errors, with a did-you-mean.
* Every error is a :class:`~orgsync.errors.ConfigError` naming the file, the
  dotted key and the remedy.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, overload

from orgsync.errors import ConfigError

_N = TypeVar("_N", int, float)
_REQUIRED: Any = object()
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SECRET_FILE_MAX_BYTES = 64 * 1024
"""The most a ``*_file`` secret may hold; longer files are refused unread."""


class Section:
    """One mapping of the config, read key by key; :meth:`done` rejects the leftovers.

    ``name`` is the section's dotted key (``""`` for the top level, ``source.auth``
    for a nested one); ``base_dir`` is the config file's directory.
    """

    def __init__(self, data: Any, *, name: str, file: str, base_dir: Path) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"expected a mapping, got {describe(data)}", file=file, key=name,
                remedy=f"write '{name.rpartition('.')[2]}:' followed by indented "
                       "'key: value' lines",
            )
        self.data: Mapping[str, Any] = data
        self.name = name
        self.file = file
        self.base_dir = base_dir
        self.used: set[str] = set()

    def key(self, key: str) -> str:
        """The dotted config key of ``key`` in this section."""
        return f"{self.name}.{key}" if self.name else key

    def error(self, key: str, message: str, remedy: str | None = None) -> ConfigError:
        """A ConfigError for ``key`` of this section."""
        return ConfigError(message, file=self.file, key=self.key(key), remedy=remedy)

    def given(self, key: str) -> bool:
        """Whether ``key`` is written at all (null included), for keys where null means off."""
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as written (``default`` when absent or null); marks ``key`` as read."""
        self.used.add(key)
        value = self.data.get(key)
        return default if value is None else value

    @overload
    def string(self, key: str, *, strip: bool = ...) -> str: ...
    @overload
    def string(self, key: str, default: str, *, strip: bool = ...) -> str: ...
    @overload
    def string(self, key: str, default: str | None, *, strip: bool = ...) -> str | None: ...

    def string(self, key: str, default: Any = _REQUIRED, *, strip: bool = True) -> str | None:
        """Non-empty text, stripped unless ``strip=False``; required without a default."""
        value = self.raw(key)
        if value is None:
            if default is _REQUIRED:
                raise self.missing(key)
            return cast(str | None, default)
        if not isinstance(value, str) or not (value.strip() if strip else value):
            raise self.error(key, f"expected a non-empty string, got {describe(value)}",
                             "quote the value if YAML reads it as something else")
        return value.strip() if strip else value

    def number(self, key: str, default: _N, *, minimum: float = 0,
               maximum: float | None = None, strict_minimum: bool = False) -> _N:
        """A number of the default's type (``int`` refuses fractions) within bounds."""
        value = self.raw(key)
        if value is None:
            return default
        kind = type(default)
        try:
            if isinstance(value, bool):
                raise TypeError
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = kind(value.strip() if isinstance(value, str) else value)
            if not math.isfinite(number):
                raise ValueError
        except (TypeError, ValueError):
            what, example = ("an integer", "3") if kind is int else ("a number", "2.5")
            raise self.error(key, f"expected {what}, got {describe(value)}",
                             f"write e.g. {key}: {example}") from None
        too_small = number <= minimum if strict_minimum else number < minimum
        if too_small or (maximum is not None and number > maximum):
            low = f"> {minimum}" if strict_minimum else f">= {minimum}"
            high = f" and <= {maximum}" if maximum is not None else ""
            raise self.error(key, f"{number} is out of range", f"use a value {low}{high}")
        return number

    @overload
    def duration(self, key: str, default: float, *, minimum: float = ...) -> float: ...
    @overload
    def duration(self, key: str, default: float | None, *,
                 minimum: float = ...) -> float | None: ...

    def duration(self, key: str, default: float | None, *,
                 minimum: float = 0.0) -> float | None:
        """Seconds, written as a number or as ``30s``, ``15m``, ``1h30m``, ``500ms``, ``1d``."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise self.error(key, f"expected a duration, got {describe(value)}",
                             f"write e.g. {key}: 90, 30s, 15m, 1h30m") from None
        if seconds < minimum:
            raise self.error(key, f"{seconds:g}s is too short", f"use at least {minimum:g}s")
        return seconds

    def boolean(self, key: str, default: bool) -> bool:
        """true/false (also written yes/no, on/off, 1/0 in any case)."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
            return _BOOLEANS[value.strip().lower()]
        raise self.error(key, f"expected true or false, got {describe(value)}",
                         f"write {key}: true or {key}: false")

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices`` (any case), returned as spelled in ``choices``."""
        value = self.raw(key)
        if value is None:
            return default
        return self._one_of(key, value, choices, f"use one of {', '.join(choices)}")

    def choices(self, key: str, default: tuple[str, ...], choices: Sequence[str], *,
                what: str) -> tuple[str, ...]:
        """One or a list of ``choices`` (any case; ``what`` they are), each once, at least one."""
        value = self.raw(key)
        if value is None:
            return default
        items = [value] if isinstance(value, str) else value
        remedy = f"write e.g. {key}: [{', '.join(choices)}]"
        if not isinstance(items, list) or not items:
            raise self.error(key, f"expected a list of {what}, got {describe(value)}", remedy)
        found: list[str] = []
        for i, item in enumerate(items):
            chosen = self._one_of(f"{key}[{i}]", item, choices, remedy)
            if chosen not in found:
                found.append(chosen)
        return tuple(found)

    def strings(self, key: str) -> tuple[str, ...]:
        """A text or a list of texts, each stripped and non-empty (empty when absent)."""
        value = self.raw(key, [])
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip()
                                                  for i in items):
            raise self.error(key, f"expected a text or a list of texts, got {describe(value)}",
                             f"write e.g. {key}: [first, second]")
        return tuple(i.strip() for i in items)

    def path(self, key: str) -> Path | None:
        """A file path, relative to the config file's directory (None when absent)."""
        value = self.string(key, None)
        return None if value is None else self._resolve(value)

    @overload
    def secret(self, key: str) -> str: ...
    @overload
    def secret(self, key: str, *, required: Literal[True]) -> str: ...
    @overload
    def secret(self, key: str, *, required: bool) -> str | None: ...

    def secret(self, key: str, *, required: bool = True) -> str | None:
        """``key`` itself, or the stripped content of the file ``key_file`` names; never echoed."""
        value, file_key = self.raw(key), f"{key}_file"
        path = self.raw(file_key)
        if value is not None and path is not None:
            raise self.error(key, f"both '{key}' and '{file_key}' are set",
                             f"keep only one of '{key}' and '{file_key}'")
        if path is not None:
            if not isinstance(path, str) or not path.strip():
                raise self.error(file_key, f"expected a file path, got {describe(path)}",
                                 f"e.g. {file_key}: /run/secrets/{key}")
            return read_secret_file(self._resolve(path.strip()), file=self.file,
                                    key=self.key(file_key))
        if value is None:
            if required:
                raise self.error(key, "is required",
                                 f"set '{key}' (e.g. '${{ENV_VAR}}') or '{file_key}'")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "expected a non-empty string",
                             "quote the value, or check the variable it comes from")
        return value.strip()

    def mapping(self, key: str) -> Mapping[str, Any]:
        """A nested mapping as written, for keys of the caller's choosing (empty when absent)."""
        value = self.raw(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping, got {describe(value)}",
                             f"write '{key}:' followed by indented 'name: value' lines")
        return value

    def section(self, key: str) -> Section:
        """A nested section, read with the same rules."""
        return Section(self.raw(key), name=self.key(key), file=self.file, base_dir=self.base_dir)

    def rest(self) -> dict[str, Any]:
        """The keys nobody read (now counted as read), for a section read by someone else."""
        out = {k: v for k, v in self.data.items() if k not in self.used}
        self.used.update(out)
        return out

    def done(self) -> None:
        """Reject the keys nobody read, with a did-you-mean (null ones are not written)."""
        unread = [k for k, v in self.data.items() if k not in self.used and v is not None]
        for key in sorted(unread, key=str):
            known = sorted(self.used)
            raise self.error(str(key), "unknown key",
                             did_you_mean(str(key), known) or f"known keys: {', '.join(known)}")

    def missing(self, key: str, remedy: str | None = None) -> ConfigError:
        """``key`` is required: the error names a written key that looks like a typo of it."""
        unread = [str(k) for k in self.data if k not in self.used]
        close = difflib.get_close_matches(key, unread, n=1)
        return self.error(key, "is required",
                          f"'{close[0]}' is written: did you mean '{key}'?" if close
                          else remedy or f"add '{key}:' to the '{self.name}' section")

    def _one_of(self, key: str, value: Any, choices: Sequence[str], remedy: str) -> str:
        if isinstance(value, str):
            folded = value.strip().casefold()
            for choice in choices:
                if choice.casefold() == folded:
                    return choice
        raise self.error(key, f"{describe(value)} is not one of {', '.join(choices)}",
                         did_you_mean(str(value), choices) or remedy)

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

def read_secret_file(path: Path, *, file: str | None, key: str) -> str:
    """The stripped text of the secret file at ``path``.

    The file must be UTF-8 text of at most :data:`SECRET_FILE_MAX_BYTES`, not empty;
    anything else is a :class:`ConfigError` naming ``file`` and ``key`` (the value is
    never echoed).
    """
    def refused(problem: str, remedy: str) -> ConfigError:
        return ConfigError(problem, file=file, key=key, remedy=remedy)

    # Read at most one byte past the cap: /dev/zero or a log file named by mistake
    # must be refused, not read into memory.
    try:
        with path.open("rb") as f:
            raw = f.read(SECRET_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise refused(f"cannot read secret file '{path}': {exc.strerror or exc}",
                      "check the path and the file's permissions") from None
    if len(raw) > SECRET_FILE_MAX_BYTES:
        raise refused(f"secret file '{path}' is larger than {SECRET_FILE_MAX_BYTES // 1024} KiB",
                      "name the file that holds only the secret")
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        raise refused(f"secret file '{path}' is not UTF-8 text",
                      "name the file that holds only the secret, as text")
    secret = text.strip()
    if not secret:
        raise refused(f"secret file '{path}' is empty", "write the secret into the file")
    return secret


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``2.5``, ``"30s"``, ``"15m"``, ``"1h30m"``, ``"500ms"`` or ``"1d"``.

    Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a duration: {value!r}")
        return float(value)
    text = str(value).strip().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


_REFERENCE = re.compile(
    r"\$\$\{"                                            # escaped: a literal ${
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bad>\$\{[^}]*\}?)"                            # anything else after ${
)


def interpolate(value: Any, key: str, file: str, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string under ``value``.

    ``$${`` is a literal ``${``. A variable that is unset (or empty) takes its
    default; unset without a default is an error naming the key and the variable.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value

        def replace(m: re.Match[str]) -> str:
            if m.group("bad") is not None:
                raise ConfigError(
                    f"malformed variable reference '{m.group('bad')}'", file=file, key=key,
                    remedy="write ${NAME} or ${NAME:-default}; $${ for a literal ${",
                )
            name = m.group("name")
            if name is None:
                return "${"
            got = env.get(name)
            if got:
                return got
            if m.group("default") is not None:
                return m.group("default")
            if got is not None:
                return got  # set but empty: the key's own check says what is wrong
            raise ConfigError(
                f"environment variable '{name}' is not set", file=file, key=key,
                remedy=f"set {name}, or give a default with ${{{name}:-default}}",
            )

        return _REFERENCE.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, f"{key}.{k}" if key else str(k), file, env)
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{key}[{i}]", file, env) for i, v in enumerate(value)]
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the closest of ``choices``, if one is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def describe(value: Any) -> str:
    """A short rendering of a config value for messages (never for secrets)."""
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 40 else f"'{value[:37]}...'"
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "nothing"
    if isinstance(value, int | float):
        return str(value)
    return f"a {type(value).__name__}"
