"""Fixtures for the connector tests: real slapd instances (OpenLDAP- and AD-shaped).

``openldap``: 3,000 inetOrgPerson entries behind a soft size limit of 500.
``ad``: an AD-shaped directory (adlite schema) behind a soft size limit of 20.
Both are session-scoped. A missing slapd fails the tests (never a skip that
hides missing work): ``bash tests/run`` installs it from tests/debian-packages.txt.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.ldap import data
from tests.connectors.ldap.slapd import AD_SCHEMA, Slapd, available

OPENLDAP_USERS = 3000


@pytest.fixture(scope="session")
def openldap() -> Iterator[Slapd]:
    """slapd with the OpenLDAP-shaped company (see tests/connectors/ldap/data.py)."""
    if not available():
        pytest.fail("slapd is not installed: run 'bash tests/run', which installs "
                    "tests/debian-packages.txt (or apt-get install slapd ldap-utils)")
    with Slapd(base=data.OPENLDAP_BASE, ldif=data.openldap_ldif(OPENLDAP_USERS),
               soft_size_limit=500) as server:
        yield server


@pytest.fixture(scope="session")
def ad() -> Iterator[Slapd]:
    """slapd with the AD-shaped directory."""
    if not available():
        pytest.fail("slapd is not installed: run 'bash tests/run', which installs "
                    "tests/debian-packages.txt (or apt-get install slapd ldap-utils)")
    with Slapd(base=data.AD_BASE, ldif=data.ad_ldif(), extra_schema=[AD_SCHEMA],
               soft_size_limit=20) as server:
        yield server
