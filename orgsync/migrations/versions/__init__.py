"""Alembic revisions of the ledger schema, one file per revision, numbered ``NNNN_what.py``."""
