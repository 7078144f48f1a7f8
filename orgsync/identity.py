"""Identity: source keys → Feishu custom ids, and who is who from one run to the next.

The HR department code becomes Feishu's ``department_id`` and the HR employee id
becomes Feishu's ``user_id``, so Feishu and HR ids match with no mapping table.
A key that breaks Feishu's rules (regex, length, the reserved ``0``/``1``, the
``od-`` prefix) is mapped deterministically to ``h-<24 hex>``; the ledger's mirror
records the id used, so the mapping is visible and stable.

Across runs, keys are compared under :class:`KeyRules`, and :func:`resolve` matches
the source's rows against managed people the source no longer holds by exact key: a
changed id is a rekey, a held-back row accounts for its person, ambiguity is a
conflict (:mod:`orgsync.reconcile` applies the result to a run).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_CUSTOM_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_\-@.]{0,63}")
_RESERVED_DEPARTMENT_IDS = frozenset({"0", "1"})


def _hashed(key: str) -> str:
    return "h-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def feishu_department_id(key: str) -> str:
    """The custom ``department_id`` for a department key (the key itself when Feishu allows it)."""
    if (
        _CUSTOM_ID.fullmatch(key)
        and key not in _RESERVED_DEPARTMENT_IDS
        and not key.startswith("od-")
    ):
        return key
    return _hashed(key)


def feishu_user_id(key: str) -> str:
    """The custom ``user_id`` for an employee key (the key itself when Feishu allows it)."""
    if _CUSTOM_ID.fullmatch(key):
        return key
    return _hashed(key)


# ------------------------------------------------------------- who is who across runs
#
# A person is a leaver only when the source positively does not hold them. Rows the
# source returned but that were held back still *account for* the managed person they
# match, and a record whose key changed is that person under a new key (``user.rekey``).


@dataclass(frozen=True, slots=True)
class KeyRules:
    """How source keys are compared across runs (``sync.ignore_key_case`` /
    ``sync.ignore_key_leading_zeros``). Keys are always compared stripped."""

    ignore_case: bool = True
    ignore_leading_zeros: bool = False

    def normalize(self, key: str) -> str:
        """The comparison form of ``key``: ``' e00030 '`` → ``'e00030'`` (→ ``'e30'``)."""
        k = key.strip()
        if self.ignore_case:
            k = k.casefold()
        if self.ignore_leading_zeros:
            k = _LEADING_ZEROS.sub("", k)
        return k


_LEADING_ZEROS = re.compile(r"(?<!\d)0+(?=\d)")


def mobile_digits(mobile: str | None) -> str | None:
    """A mobile reduced to what identifies it: digits only, mainland numbers without +86."""
    if not mobile:
        return None
    digits = "".join(c for c in mobile if c.isdigit())
    if len(digits) == 13 and digits.startswith("861"):
        digits = digits[2:]
    return digits or None


@dataclass(frozen=True, slots=True)
class Identity:
    """The identifying values of one source row (a record, or a row held back)."""

    key: str | None
    email: str | None
    mobile: str | None
    where: str | None = None
    #: False when the id itself is what is wrong (empty, mangled by Excel, not an id).
    usable: bool = True

    @property
    def identified(self) -> bool:
        """True when the row names someone by a usable id (a new person if nobody matches)."""
        return self.key is not None and self.usable


@dataclass(slots=True)
class Resolution:
    """How the source's rows map onto the people orgsync manages.

    * ``rekeys``: new source key → the managed key it replaces (the same person);
    * ``accounted``: managed key → the held row that accounts for them (not a leaver);
    * ``conflicts``: ``(source key, reason)`` of records matching ambiguously; held;
    * ``unidentified``: held rows that match nobody for sure and have no usable id —
      while there is one, nobody is a leaver in the run.
    """

    rekeys: dict[str, str] = field(default_factory=dict)
    accounted: dict[str, Identity] = field(default_factory=dict)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    unidentified: list[Identity] = field(default_factory=list)


class _Index:
    """Managed people the source does not hold by their exact key, by each identifying value."""

    def __init__(self, absent: Mapping[str, tuple[str | None, str | None]],
                 rules: KeyRules) -> None:
        self.rules = rules
        self.by_key: dict[str, set[str]] = defaultdict(set)
        self.by_email: dict[str, set[str]] = defaultdict(set)
        self.by_mobile: dict[str, set[str]] = defaultdict(set)
        self.values = absent
        for k, (email, mobile) in absent.items():
            self.by_key[rules.normalize(k)].add(k)
            if email:
                self.by_email[email.casefold()].add(k)
            if (digits := mobile_digits(mobile)) is not None:
                self.by_mobile[digits].add(k)

    def by_id(self, key: str | None) -> set[str]:
        return set(self.by_key.get(self.rules.normalize(key), ())) if key else set()

    def by_contact(self, who: Identity) -> set[str]:
        found: set[str] = set()
        if who.email:
            found |= self.by_email.get(who.email.casefold(), set())
        if (digits := mobile_digits(who.mobile)) is not None:
            found |= self.by_mobile.get(digits, set())
        return found

    def contradicts(self, managed: str, who: Identity) -> bool:
        """True when ``who`` has an email or mobile that differs from ``managed``'s."""
        email, mobile = self.values[managed]
        if who.email and email and who.email.casefold() != email.casefold():
            return True
        a, b = mobile_digits(who.mobile), mobile_digits(mobile)
        return bool(a and b and a != b)


def resolve(new: Mapping[str, Identity], held: Iterable[Identity],
            absent: Mapping[str, tuple[str | None, str | None]],
            rules: KeyRules, changed: Mapping[str, Identity] | None = None) -> Resolution:
    """Match the source's rows against managed people it does not hold by exact key.

    ``new``: records that pass validation and whose key orgsync does not manage;
    ``held``: rows held back (by the connector or by validation);
    ``absent``: managed, live people the source holds under no exact key → (email, mobile);
    ``changed``: records of managed people whose email or mobile changed. One whose new
    value is an absent person's may be that person's row under a wrong id: a conflict.

    A new record is the absent person whose key equals its own after ``rules``, or
    else the one its email and mobile match with no value contradicting (a rekey). Two
    candidates, a contradicting value, or two records claiming one person are conflicts:
    the records are held and the people accounted for. A held row accounts for every
    absent person it matches by key, email or mobile; one that matches nobody and has
    no usable key is unidentified. Deterministic in the inputs.
    """
    out = Resolution()
    if not absent:
        out.unidentified = sorted((h for h in held if not h.identified),
                                  key=lambda h: (h.where or "", h.email or "", h.mobile or ""))
        return out
    index = _Index(absent, rules)
    claims: dict[str, list[str]] = defaultdict(list)  # managed key -> new keys claiming it
    for key in sorted(new):
        who = new[key]
        by_id = index.by_id(key)
        if len(by_id) == 1:
            claims[next(iter(by_id))].append(key)
            continue
        matches = by_id or index.by_contact(who)
        if not matches:
            continue
        names = ", ".join(sorted(matches))
        if len(matches) == 1 and not index.contradicts(next(iter(matches)), who):
            claims[next(iter(matches))].append(key)
            continue
        why = ("its id matches several people orgsync manages" if by_id else
               "its email or mobile matches" + (" several people" if len(matches) > 1 else
                                                " but the other value differs from"))
        out.conflicts.append((key, f"{why} ({names}), who the source no longer holds under "
                                   "their id; not created or changed until the source says "
                                   "who is who"))
        for m in matches:
            out.accounted[m] = who
    for managed in sorted(claims):
        keys = claims[managed]
        if len(keys) == 1 and managed not in out.accounted:
            out.rekeys[keys[0]] = managed
            continue
        for key in keys:
            out.conflicts.append((key, f"matches {managed}, whom orgsync manages, as do "
                                       f"other records ({', '.join(k for k in keys if k != key)})"
                                  if len(keys) > 1 else
                                  f"matches {managed}, whom orgsync manages, ambiguously"))
        out.accounted[managed] = new[keys[0]]
    for key, who in sorted((changed or {}).items()):
        matches = index.by_contact(who)
        if matches:
            out.conflicts.append((key, f"its email or mobile now belongs to "
                                       f"{', '.join(sorted(matches))}, who the source no longer "
                                       "holds under their id (is this their row under a wrong "
                                       "id?); left as it is until the source says who is who"))
            for m in matches:
                out.accounted.setdefault(m, who)
    out.conflicts.sort()
    for row in held:
        matches = index.by_id(row.key) | index.by_contact(row)
        for m in sorted(matches):
            out.accounted.setdefault(m, row)
        if not matches and not row.identified:
            out.unidentified.append(row)
    out.unidentified.sort(key=lambda h: (h.where or "", h.email or "", h.mobile or ""))
    return out
