"""The table of operation kinds (orgsync.operations): one row per kind."""

from __future__ import annotations

from orgsync.operations import SPECS
from orgsync.plan import OpKind


def test_every_kind_has_exactly_one_spec_in_kind_order() -> None:
    # Adding an OpKind without its row must fail here, not at apply time.
    assert list(SPECS) == list(OpKind)
