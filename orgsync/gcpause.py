"""Garbage-collector control for the bulk phases of a run (measured in ``orgsync.bench``).

Planning a 100k-person org builds a few million small objects that all stay
alive until the run ends. CPython's cyclic collector, left on, rescans that
growing heap again and again and finds nothing: it cost about a third of a
large plan's wall time. Reference counting still frees everything non-cyclic
while the collector is paused, so pausing it over bulk work is safe.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc(*, freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic collector inside the block (nesting is fine).

    ``freeze``: on leaving, move everything alive into the permanent generation
    (:func:`gc.freeze`) so later collections skip the bulk just built; call
    :func:`thaw` once that data is dropped (the end of a run) so cycles among it
    become collectable again.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


def thaw() -> None:
    """Undo :func:`paused_gc`'s freeze: frozen objects are collectable again."""
    gc.unfreeze()


@contextmanager
def young_only() -> Iterator[None]:
    """Inside the block the collector runs, but only over young objects (generations 0
    and 1), whatever the caller had set; on leaving, the caller's setting is back.

    For bulk work that also makes short-lived cyclic garbage (a network read: every
    request and response leaves cycles behind): the young collections reclaim that,
    while the full collections that would rescan the growing heap of kept results do
    not run.
    """
    was_enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 2**31 - 1)
    gc.enable()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not was_enabled:
            gc.disable()
