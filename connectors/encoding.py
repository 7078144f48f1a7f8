"""Telling a legacy Chinese export's encoding from its bytes (``encoding: auto``).

GB18030 reads nearly any byte string without error, Big5 text included — as
mojibake that would rename everyone. So a strict decode is not evidence
enough: :func:`decode_legacy_cjk` also scores how plausible each reading is
and refuses a file whose reading is not decisively GB18030.

The score of a reading is the share of its letters beyond ASCII (punctuation
and spaces aside) that are level-1 hanzi — the "frequently used" set — of
the reading codec's own standard (GB 2312 level 1, Big5 level 1). Names,
departments and titles written in that standard score near 1; another
codec's bytes read through it land on rare hanzi, kana, Greek or private-use
characters and score far lower (Big5 names read as GB18030: about 0.3–0.4).
Big5 is weighed but never chosen: a Big5 file is refused with the remedy of
saying so, rather than read on a guess.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

#: Codecs weighed, with their standard's table and level-1 hanzi range (encoded value).
_LEVEL_ONE = {"gb18030": ("gb2312", 0xB0A1, 0xD7FE), "big5": ("big5", 0xA440, 0xC67E)}
#: The reading ``encoding: auto`` may choose; the others only compete with it.
CHOSEN = "gb18030"
#: A reading this plausible, ahead of every other by ``MIN_LEAD``, is trusted.
MIN_PLAUSIBLE = 0.8
MIN_LEAD = 0.25
_ASCII = re.compile(r"[\x00-\x7f]+")


def plausibility(text: str, codec: str) -> float:
    """Share of ``text``'s letters beyond ASCII that are level-1 hanzi of ``codec``'s
    standard (1.0 when there are none)."""
    table, low, high = _LEVEL_ONE[codec]
    total = hits = 0
    # Distinct characters (a few thousand at most); ASCII dropped first, in C: counting
    # every character of a 12 MB export costs four times as much.
    for ch, n in Counter(_ASCII.sub("", text)).items():
        if unicodedata.category(ch)[0] in "PZ":
            continue
        total += n
        try:
            raw = ch.encode(table)
        except UnicodeEncodeError:
            continue
        if len(raw) == 2 and low <= int.from_bytes(raw) <= high:
            hits += n
    return hits / total if total else 1.0


def decode_legacy_cjk(data: bytes) -> tuple[str | None, dict[str, float | None]]:
    """``data`` read as :data:`CHOSEN` when that reading is trusted (else ``None``), and
    every weighed codec's score (``None``: it cannot decode ``data`` at all)."""
    texts: dict[str, str] = {}
    scores: dict[str, float | None] = {}
    for codec in _LEVEL_ONE:
        try:
            texts[codec] = data.decode(codec)
        except UnicodeDecodeError:
            scores[codec] = None
            continue
        scores[codec] = plausibility(texts[codec], codec)
    chosen = scores[CHOSEN]
    rivals = [s for c, s in scores.items() if c != CHOSEN and s is not None]
    if chosen is not None and chosen >= MIN_PLAUSIBLE and all(
            chosen - s >= MIN_LEAD for s in rivals):
        return texts[CHOSEN], scores
    return None, scores
