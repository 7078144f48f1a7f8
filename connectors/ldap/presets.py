"""Presets for ``type: ldap``: config fragments the user's options are merged onto.

* ``openldap`` — ``inetOrgPerson`` entries; the key is ``entryUUID`` (survives
  renames and moves); departments are the ``ou`` tree under ``base_dn``, keyed
  by their ``entryUUID``.
* ``ad`` — Active Directory: ``user`` objects that are not computers; the key is
  ``objectGUID``; ``userAccountControl`` bit 2 (ACCOUNTDISABLE) marks leavers;
  ``manager`` DNs resolve to the manager's key; departments are the OU tree,
  keyed by the OUs' ``objectGUID`` (or use ``departments: {from: attribute,
  field: department}`` for AD's free-text department).
"""

from __future__ import annotations

from typing import Any

OPENLDAP: dict[str, Any] = {
    "user_filter": "(objectClass=inetOrgPerson)",
    "page_size": 500,
    "departments": {"from": "ou", "key": "entryUUID", "name": "ou"},
    "mapping": {"employees": {
        "key": "entryUUID",
        "name": {"from": ["displayName", "cn"]},
        "email": "mail",
        "mobile": {"from": ["mobile", "telephoneNumber"]},
        "job_title": "title",
        "employee_no": "employeeNumber",
        "manager_key": "manager",
        "city": "l",
        "work_station": "roomNumber",
    }},
}

AD: dict[str, Any] = {
    # objectClass=user also matches computer accounts in AD.
    "user_filter": "(&(objectClass=user)(!(objectClass=computer)))",
    # AD's MaxPageSize is 1000 by default.
    "page_size": 500,
    "departments": {"from": "ou", "key": "objectGUID", "name": "ou"},
    "mapping": {"employees": {
        "key": "objectGUID",
        "name": {"from": ["displayName", "cn"]},
        "email": {"from": ["mail", "userPrincipalName"]},
        "mobile": "mobile",
        "job_title": "title",
        "employee_no": {"from": ["employeeID", "employeeNumber"]},
        "manager_key": "manager",
        "city": "l",
        "work_station": "physicalDeliveryOfficeName",  # "Office" in AD Users and Computers
        "status": {"from": "userAccountControl", "transforms": [{"bit": 2}],
                   "map": {"true": "terminated", "false": "active"}, "default": "active"},
    }},
}

PRESETS: dict[str, dict[str, Any]] = {"openldap": OPENLDAP, "ad": AD}
