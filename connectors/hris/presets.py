"""Presets for ``type: hris``: config fragments the user's own options are merged onto.

A preset is plain config (the same keys a user writes), so anything in it can be
overridden key by key, and a mapping rule removed with ``field: null``.

* ``scim`` — SCIM 2.0 ``/Users`` with the enterprise extension (RFC 7643/7644):
  index paging (``startIndex`` is 1-based, ``totalResults`` checked), bearer
  token, ``id`` as the key, the manager's ``id`` in ``manager.value``,
  departments from the enterprise ``department`` text (``/``-separated paths).
* ``bamboohr`` — BambooHR's custom report (``POST /v1/reports/custom``; HTTP Basic
  with the API key as user name and ``x`` as password), ``id`` as the key,
  ``supervisorEId`` as the manager, departments from ``division/department``; its leave
  preset reads ``GET time_off/requests/`` (approved requests mark, any other status not).
"""

from __future__ import annotations

from typing import Any

SCIM_ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

SCIM: dict[str, Any] = {
    "auth": {"type": "bearer"},
    "employees": {
        "path": "/Users",
        "method": "GET",
        # Without a sort order SCIM servers may return pages in an unstable order
        # (scim2-server does): records would be skipped or repeated across pages.
        "params": {"sortBy": "userName"},
        "records": "Resources",
        "pagination": {"type": "offset", "offset_param": "startIndex", "size_param": "count",
                       "start": 1, "size": 100, "total": "totalResults"},
    },
    "departments": {"from": "path", "field": f"{SCIM_ENTERPRISE}:department", "separator": "/"},
    "mapping": {"employees": {
        "key": "id",
        "name": {"from": ["displayName", "name.formatted"],
                 "template": "{name.familyName}{name.givenName}"},
        "email": {"from": ["emails[primary=true].value", "emails[type=work].value",
                           "emails[0].value"]},
        "mobile": {"from": ["phoneNumbers[type=mobile].value", "phoneNumbers[0].value"]},
        "job_title": "title",
        "employee_no": f"{SCIM_ENTERPRISE}:employeeNumber",
        "manager_key": f"{SCIM_ENTERPRISE}:manager.value",
        "city": {"from": ["addresses[primary=true].locality", "addresses[0].locality"]},
        "employee_type": {"from": "userType", "default": "regular",
                          "map": {"employee": "regular", "regular": "regular",
                                  "intern": "intern", "contractor": "contractor",
                                  "consultant": "consultant", "outsourced": "outsourced",
                                  "*": "regular"}},
        "status": {"from": "active", "default": "active"},
    }},
}

BAMBOOHR_FIELDS = [
    "id", "employeeNumber", "firstName", "lastName", "displayName", "workEmail", "mobilePhone",
    "department", "division", "location", "jobTitle", "supervisorEId", "status", "hireDate",
    "employmentHistoryStatus", "gender",
]

BAMBOOHR: dict[str, Any] = {
    "auth": {"type": "basic", "password": "x"},
    "employees": {
        "path": "reports/custom",
        "method": "POST",
        "params": {"format": "JSON", "onlyCurrent": "false"},
        "body": {"title": "orgsync", "fields": BAMBOOHR_FIELDS},
        "records": "employees",
        "pagination": {"type": "none"},
    },
    "departments": {"from": "path", "field": "{division}/{department}", "separator": "/"},
    "mapping": {"employees": {
        "key": "id",
        "name": {"from": "displayName", "template": "{firstName} {lastName}"},
        "email": "workEmail",
        "mobile": "mobilePhone",
        "job_title": "jobTitle",
        "employee_no": "employeeNumber",
        "manager_key": "supervisorEId",
        "city": "location",
        "join_date": "hireDate",
        # BambooHR's gender is Male, Female, Nonbinary or empty; anything else is not said.
        "gender": {"from": "gender", "map": {"male": "male", "female": "female",
                                             "nonbinary": "other", "*": "secret"}},
        "employee_type": {"from": "employmentHistoryStatus", "default": "regular",
                          "map": {"full-time": "regular", "part-time": "regular",
                                  "intern": "intern", "contractor": "contractor",
                                  "consultant": "consultant", "*": "regular"}},
        "status": {"from": "status", "default": "active",
                   "map": {"active": "active", "inactive": "terminated"}},
    }},
}

PRESETS: dict[str, dict[str, Any]] = {"scim": SCIM, "bamboohr": BAMBOOHR}

BAMBOOHR_LEAVES: dict[str, Any] = {
    "auth": {"type": "basic", "password": "x"},
    "headers": {"Accept": "application/json"},
    # GET time_off/requests (documentation.bamboohr.com/reference/time-off-1): start and end
    # are required and select the requests that touch those days; one answer, no paging; the
    # body is a list of requests. Any status but approved (requested, denied, superseded,
    # canceled) leaves no mark.
    "leaves": {"path": "time_off/requests/", "method": "GET",
               "params": {"start": "{today}", "end": "{horizon}"},
               "pagination": {"type": "none"}},
    "mapping": {"leave_id": "id", "employee_id": "employeeId", "start": "start", "end": "end",
                "kind": "type.name",
                "status": {"from": "status.status", "default": "requested",
                           "map": {"approved": "approved", "*": "cancelled"}}},
}

LEAVE_PRESETS: dict[str, dict[str, Any]] = {"bamboohr": BAMBOOHR_LEAVES}
"""Presets for ``leave.source: {type: hris}``: the leave endpoint of an HRIS preset."""
