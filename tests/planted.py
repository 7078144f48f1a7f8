"""Secrets the security tests plant in configs and environments.

The suite's leak scan (``tests/conftest.py``) looks for each of them in every test's
output and in every ledger file the tests leave behind.
"""

from __future__ import annotations

HR_TOKEN = "hr-api-key-5d41c7e9"  # in an HRIS endpoint's query string
# a PostgreSQL password with an unencoded '@'; neither half may ever be printed
PG_PASSWORD_HEAD, PG_PASSWORD_TAIL = "Pg-9c2e", "Zz-41d0"
PG_PASSWORD = f"{PG_PASSWORD_HEAD}@{PG_PASSWORD_TAIL}"

PLANTED = {HR_TOKEN: "the HR API token", PG_PASSWORD_HEAD: "part of a ledger password",
           PG_PASSWORD_TAIL: "part of a ledger password"}
