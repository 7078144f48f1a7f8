"""The sandbox's and the client's copies of the §1.1 read-permission table agree.

They are written twice on purpose (a fake must not share code with what it tests), so a
mistake has to be made twice to go unseen.
"""

from __future__ import annotations

from orgsync.feishu import schema
from orgsync.sandbox.tenant import permissions


def test_both_tables_say_the_same() -> None:
    assert {k: set(v) for k, v in permissions.USER_FIELDS.items()} == \
        {k: set(v) for k, v in schema.USER_READ.items()}
    assert {k: set(v) for k, v in permissions.DEPARTMENT_FIELDS.items()} == \
        {k: set(v) for k, v in schema.DEPARTMENT_READ.items()}
