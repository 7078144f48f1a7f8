"""The table of operation kinds (orgsync.operations): one row per kind."""

from __future__ import annotations

from orgsync.operations import SPECS
from orgsync.plan import OpKind


def test_every_kind_has_exactly_one_spec_in_kind_order() -> None:
    # Adding an OpKind without its row must fail here, not at apply time.
    assert list(SPECS) == list(OpKind)


def test_every_kind_but_the_ledger_only_ones_names_the_api_it_writes() -> None:
    # The progress bar's ETA bounds each API by its documented limits (orgsync.render).
    assert {k for k, s in SPECS.items() if s.writes is None} == {
        OpKind.DEPT_REKEY, OpKind.DEPT_RELEASE, OpKind.USER_RELEASE, OpKind.GROUP_ADOPT}
    assert SPECS[OpKind.USER_CREATE].writes is not None
    assert SPECS[OpKind.USER_CREATE].writes.key == "POST /open-apis/contact/v3/users"
