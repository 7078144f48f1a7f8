"""Alembic environment for the ledger. Runs only through :func:`orgsync.migrations.upgrade`
(or the ``revision`` helper), which hands in a connection already in the one transaction
the whole upgrade commits in (Alembic then opens none of its own)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import orgsync.tables  # noqa: F401 - importing the tables registers them in the metadata


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the ledger's migrations through orgsync.migrations.upgrade()")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
