"""PII masking in logs: every email and mobile form the connectors accept, in every format.

Each row is logged through :func:`orgsync.logs.configure` (the real processor chain and
renderer) as a field, inside a nested structure, in an exception's text, and as part of
a sentence; the raw value must not appear and the masked form must.
"""

from __future__ import annotations

import io
import json
from typing import Literal

import pytest
import structlog

from orgsync import logs

FORMATS: list[Literal["console", "json"]] = ["console", "json"]

MASKED = [  # (what a connector may accept, how the log shows it)
    ("zhang.san@example.com", "z***@example.com"),
    ("张三@example.com", "张***@example.com"),
    ("li@例子.公司", "l***@例子.公司"),
    ("13800138000", "138****000"),
    ("138 0013 8000", "138****000"),
    ("138-0013-8000", "138****000"),
    ("8613800138000", "86138****000"),
    ("+8613800138000", "+86138****000"),
    ("+86 138 0013 8000", "+86 138****000"),
    ("(+86) 138-0013-8000", "(+86) 138****000"),
    ("008613800138000", "0086138****000"),
    ("0086 138 0013 8000", "0086 138****000"),
    ("+1 (415) 555-0100", "+1 (41****100"),
    ("+14155550100", "+141****100"),
    ("+44 7700 900123", "+44 77****123"),
    ("(415) 555-0100", "(41****100"),
    ("07700 900123", "077****123"),
    ("１３８００１３８０００", "１３８****０００"),  # full-width digits (NFKC-normalised on read)
    ("E1_13800138000", "E1_138****000"),
    ("手机13800138000", "手机138****000"),
]

READABLE = [  # ids, log ids, run ids, times and addresses that must stay as they are
    "E00030",
    "00007",
    "20261205T072919-02495c",
    "202611241333110000000137471A03",
    "3f9a13800138000b2c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b",
    "550e8400-e29b-41d4-a716-446655440000",
    "2026-12-05 07:29:19",
    "192.168.100.200",
    "ou_7d8a6e6df7621556ce0d21922b676706ccs",
]


def render(fmt: Literal["console", "json"], **fields: object) -> str:
    """One warning with ``fields``, rendered by the configured chain in ``fmt``."""
    out = io.StringIO()
    logs.configure(fmt=fmt, stream=out)
    structlog.get_logger("t").warning("evt", **fields)
    return out.getvalue()


def raise_with(text: str) -> BaseException:
    try:
        raise ValueError(f"bad row {text}")
    except ValueError as exc:
        return exc


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("raw", "shown"), MASKED)
def test_every_form_is_masked(fmt: Literal["console", "json"], raw: str, shown: str) -> None:
    """The raw value appears nowhere; its masked form appears in each place it was logged."""
    text = render(fmt, value=raw, nested={"rows": [raw, {"mobile": raw}]},
                  sentence=f"row 7: '{raw}' is taken", keyed={raw: 1}, error=raise_with(raw))
    if fmt == "json":  # compare the decoded text (the JSON escapes non-ASCII characters)
        event = json.loads(text)
        assert raw not in json.dumps(event, ensure_ascii=False)
        assert event["value"] == shown
        assert event["nested"] == {"rows": [shown, {"mobile": shown}]}
        assert event["sentence"] == f"row 7: '{shown}' is taken"
        assert event["keyed"] == {shown: 1}
        assert event["error"] == f"ValueError('bad row {shown}')"
    else:
        assert raw not in text
        assert text.count(shown) == 6, text


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", READABLE)
def test_ids_stay_readable(fmt: Literal["console", "json"], value: str) -> None:
    """Ids, log ids, run ids, dates and addresses are not taken for phone numbers."""
    text = render(fmt, value=value, sentence=f"run {value} done")
    assert "****" not in text
    if fmt == "json":
        event = json.loads(text)
        assert (event["value"], event["sentence"]) == (value, f"run {value} done")
    else:
        assert text.count(value) == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_masking_off_keeps_pii_but_not_url_secrets(fmt: Literal["console", "json"]) -> None:
    """logging.mask_pii: false shows people's data, never a URL's password or query value."""
    out = io.StringIO()
    logs.configure(fmt=fmt, stream=out, mask=False)
    structlog.get_logger("t").warning("evt", mobile="13800138000",
                                      url="https://svc:pw-77@hr.example.com/p?api_key=k-91")
    text = out.getvalue()
    assert "13800138000" in text
    assert "https://svc:***@hr.example.com/p?api_key=***" in text
    assert "pw-77" not in text
    assert "k-91" not in text
