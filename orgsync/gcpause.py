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
