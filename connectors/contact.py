"""The one rule for mobiles and emails, shared by every connector and mode.

A source cell goes through :func:`normalize_mobile` and :func:`normalize_email`
once, at the connector boundary, so validation, the diff, adoption lookups and
Feishu all see the same canonical text: mobiles in E.164 (``+8613812345678``),
emails lower-cased (Feishu treats them case-insensitively; ``Zhang.Wei@X.com``
and ``zhang.wei@x.com`` are one address).

Mobiles are accepted as HR exports write them: full-width digits, spaces,
dashes, dots and brackets; mainland numbers with ``+86``, ``0086`` or (in
region ``CN``) a bare ``86`` before the 11 digits; other countries as
``+<country code>…`` or ``00<country code>…`` (national forms read in
``region``). The result must pass :func:`orgsync.validate.mobile_problem`, so a
number the connector lets through is one validation accepts. Every problem
quotes the cell exactly as written.
"""

from __future__ import annotations

import re
import unicodedata

from orgsync.validate import mobile_problem

EXCEL_NUMBER = re.compile(r"[+-]?\d(?:\.\d+)?[eE]\+?\d+")
_PHONE_NOISE = re.compile(r"[\s\-().]")
# Mainland mobiles with their usual prefixes: +86, 0086 (the international call
# prefix dialled from China) or a bare 86 (an export that dropped the plus).
_CN_MOBILE = re.compile(r"(\+86|0086|86)?(1[3-9]\d{9})")
_PLAIN_MAINLAND = re.compile(r"(?:\+86)?1[3-9]\d{9}", re.ASCII)


class ContactProblem(ValueError):
    """A mobile or email cannot be used; the message is the reason, quoting the cell."""


def normalize_mobile(text: str, region: str = "CN") -> str:
    """E.164 form of a mobile cell (``0086 138 1234 5676`` → ``+8613812345676``).

    ``region`` reads numbers written without a country code. ContactProblem
    when the cell is Excel's scientific notation, not a phone number, or not a
    mobile Feishu accepts.
    """
    if _PLAIN_MAINLAND.fullmatch(text) and (region == "CN" or text[0] == "+"):
        return text if text[0] == "+" else "+86" + text  # most cells: no cleaning needed
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if EXCEL_NUMBER.fullmatch(cleaned):
        raise ContactProblem(_problem(cleaned, text, region))
    compact = _PHONE_NOISE.sub("", cleaned)
    # Fast path for the mainland shapes (phonenumbers.parse costs ~50 µs a number).
    mainland = _CN_MOBILE.fullmatch(compact)
    if mainland and (region == "CN" or mainland.group(1) == "+86"):
        return "+86" + mainland.group(2)
    import phonenumbers  # only for the uncommon shapes: its import costs more than a plan's share

    try:
        number = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException:
        raise ContactProblem(_problem(compact, text, region)) from None
    # IS_POSSIBLE_LOCAL_ONLY (a number without its area code) is not a mobile
    if phonenumbers.is_possible_number_with_reason(number) != \
            phonenumbers.ValidationResult.IS_POSSIBLE:
        raise ContactProblem(_problem(compact, text, region))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    problem = mobile_problem(e164, written=text)
    if problem is not None:
        raise ContactProblem(problem)
    return e164


def _problem(compact: str, text: str, region: str) -> str:
    """Why the cell ``text`` is no mobile: validation's wording where it has one."""
    return mobile_problem(compact, written=text) or (
        f"'{text}' is not a possible phone number"
        + ("" if compact.startswith("+") else f" in region {region}"))


def normalize_email(text: str) -> str:
    """The canonical form of an email cell: NFKC (full-width letters), lower case."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.lower()
