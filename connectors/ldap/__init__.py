"""``type: ldap``: OpenLDAP and Active Directory (presets ``openldap`` and ``ad``)."""

from __future__ import annotations

from connectors.ldap.connector import LdapConnector

__all__ = ["LdapConnector"]
