"""LDIF for the LDAP tests: an OpenLDAP-shaped company and an Active Directory-shaped one."""

from __future__ import annotations

import uuid

from tests.connectors.ldap.slapd import ldif_entry

OPENLDAP_BASE = "dc=example,dc=com"
READER_DN = f"cn=reader,{OPENLDAP_BASE}"
READER_PASSWORD = "reader-pw"
PEOPLE = f"ou=people,{OPENLDAP_BASE}"
# (OU DN below ou=people, departmentNumber path)
TEAMS = [("ou=平台组,ou=研发部", "研发部/平台组"), ("ou=研发部", "研发部"), ("ou=Sales", "Sales"),
         ("ou=Finance", "Finance")]
BOSS_DN = f"uid=u00000,ou=研发部,{PEOPLE}"


def openldap_ldif(n: int) -> str:
    """``n`` inetOrgPerson entries in a small ou tree, all reporting to u00000.

    ``manager`` is written with upper-case attribute types (as some tools do);
    u00001/u00002 have the title ``R&D (Beijing)*`` and u00003 ``R&D (Beijing)x``;
    u00004's manager is an entry that does not exist under the base.
    """
    out = [
        ldif_entry(OPENLDAP_BASE, [("objectClass", "dcObject"), ("objectClass", "organization"),
                                   ("dc", "example"), ("o", "Example")]),
        ldif_entry(READER_DN, [("objectClass", "person"), ("cn", "reader"), ("sn", "reader"),
                               ("userPassword", READER_PASSWORD)]),
        ldif_entry(f"ou=groups,{OPENLDAP_BASE}", [("objectClass", "organizationalUnit"),
                                                  ("ou", "groups")]),
        ldif_entry(PEOPLE, [("objectClass", "organizationalUnit"), ("ou", "people")]),
    ]
    for rdn in ("ou=研发部", "ou=平台组,ou=研发部", "ou=Sales", "ou=Finance"):
        out.append(ldif_entry(f"{rdn},{PEOPLE}", [("objectClass", "organizationalUnit"),
                                                  ("ou", rdn.split(",")[0][3:])]))
    boss_upper = BOSS_DN.replace("uid=", "UID=").replace("ou=", "OU=").replace("dc=", "DC=")
    for i in range(n):
        team, path = TEAMS[1] if i == 0 else TEAMS[i % 4]
        title = "R&D (Beijing)*" if i in (1, 2) else "R&D (Beijing)x" if i == 3 else "工程师"
        attrs: list[tuple[str, str | bytes]] = [
            ("objectClass", "inetOrgPerson"), ("uid", f"u{i:05d}"), ("cn", f"User {i}"),
            ("sn", str(i)), ("displayName", f"员工{i}"), ("mail", f"u{i}@example.com"),
            ("mobile", f"+86 138 {i:08d}"), ("employeeNumber", f"{i:06d}"), ("title", title),
            ("departmentNumber", path),
        ]
        if i == 5:
            attrs.append(("roomNumber", "3F-12"))
        if i == 4:
            attrs.append(("manager", f"uid=ghost,ou=elsewhere,{OPENLDAP_BASE}"))
        elif i:
            attrs.append(("manager", boss_upper))
        out.append(ldif_entry(f"uid=u{i:05d},{team},{PEOPLE}", attrs))
    return "".join(out)


AD_BASE = "DC=corp,DC=example,DC=com"
AD_STAFF = f"OU=Staff,{AD_BASE}"
AD_READER_DN = f"CN=orgsync,OU=Service,{AD_BASE}"
AD_CATEGORY = f"CN=Person,CN=Schema,CN=Configuration,{AD_BASE}"


def guid(n: int) -> uuid.UUID:
    """A recognisable GUID for test object number ``n``."""
    return uuid.UUID(f"12340000-0000-0000-0000-{n:012d}")


def sid(rid: int) -> bytes:
    """A binary SID ``S-1-5-21-1-2-3-<rid>``."""
    subs = [21, 1, 2, 3, rid]
    return bytes([1, len(subs)]) + (5).to_bytes(6, "big") + b"".join(
        s.to_bytes(4, "little") for s in subs)


def _ou(dn: str, n: int) -> str:
    return ldif_entry(dn, [("objectClass", "organizationalUnit"), ("objectClass", "adBookkeeping"),
                           ("ou", dn.split(",")[0][3:]), ("objectGUID", guid(n).bytes_le)])


def _user(dn: str, n: int, sam: str, *, uac: int = 512, manager: str | None = None,
          mail: bool = True, extra: tuple[tuple[str, str], ...] = ()) -> str:
    cn = dn.split(",OU=")[0][3:].replace("\\", "")
    attrs: list[tuple[str, str | bytes]] = [
        ("objectClass", "top"), ("objectClass", "person"), ("objectClass", "organizationalPerson"),
        ("objectClass", "user"), ("cn", cn), ("sn", cn.split()[-1]), ("displayName", cn),
        ("sAMAccountName", sam), ("userPrincipalName", f"{sam.upper()}@Corp.Example.com"),
        ("mobile", f"+86 138 0000 {n:04d}"), ("title", "Engineer"), ("employeeID", f"E{n:05d}"),
        ("userAccountControl", str(uac)), ("objectGUID", guid(n).bytes_le),
        ("objectSid", sid(n)), ("objectCategory", AD_CATEGORY), ("distinguishedName", dn),
        *extra,
    ]
    if mail:
        attrs.append(("mail", f"{sam}@example.com"))
    if manager:
        attrs.append(("manager", manager))
    return ldif_entry(dn, attrs)


JDOE = f"CN=John Doe,OU=Engineering,{AD_STAFF}"
CARL = f"CN=Carl Contractor,OU=Contractors,{AD_BASE}"


def ad_ldif(extra_users: int = 40) -> str:
    """An AD-shaped directory: OUs with objectGUIDs, users, a disabled account, cross-OU managers.

    ``OU=Staff`` is the synced base. John Doe (GUID …101) leads; Alice (``CN=Smith\\, Alice``,
    no mail, 66048 = enabled) and Bob (514 = disabled) report to him; Chris reports to Carl, who
    lives in ``OU=Contractors`` outside the base. ``extra_users`` more people sit in Sales;
    BUILD01 is a computer account (objectClass user + computer).
    """
    manager = JDOE.upper()  # DN-valued attributes come back as written
    out = [
        ldif_entry(AD_BASE, [("objectClass", "dcObject"), ("objectClass", "organization"),
                             ("dc", "corp"), ("o", "Example Corp")]),
        ldif_entry(f"OU=Service,{AD_BASE}", [("objectClass", "organizationalUnit"),
                                             ("ou", "Service")]),
        ldif_entry(AD_READER_DN, [("objectClass", "person"), ("objectClass", "organizationalPerson"),
                                  ("objectClass", "user"), ("cn", "orgsync"), ("sn", "orgsync"),
                                  ("userPassword", READER_PASSWORD)]),
        _ou(AD_STAFF, 1), _ou(f"OU=Engineering,{AD_STAFF}", 2),
        _ou(f"OU=Platform,OU=Engineering,{AD_STAFF}", 3), _ou(f"OU=Sales,{AD_STAFF}", 4),
        _ou(f"OU=Contractors,{AD_BASE}", 5),
        _user(JDOE, 101, "jdoe", extra=(("department", "Engineering"),
                                        ("physicalDeliveryOfficeName", "B2-0417"))),
        _user(f"CN=Smith\\, Alice,OU=Platform,OU=Engineering,{AD_STAFF}", 102, "asmith",
              uac=66048, manager=manager, mail=False, extra=(("department", "Engineering/Platform"),)),
        _user(f"CN=Bob Wang,OU=Sales,{AD_STAFF}", 103, "bwang", uac=514, manager=manager,
              extra=(("department", "Sales"),)),
        _user(f"CN=Chris Lee,OU=Sales,{AD_STAFF}", 104, "clee", manager=CARL,
              extra=(("department", "Sales"),)),
        _user(CARL, 105, "carl"),
        ldif_entry(f"CN=BUILD01,OU=Engineering,{AD_STAFF}", [
            ("objectClass", "top"), ("objectClass", "person"),
            ("objectClass", "organizationalPerson"), ("objectClass", "user"),
            ("objectClass", "computer"), ("cn", "BUILD01"), ("sn", "BUILD01"),
            ("sAMAccountName", "BUILD01$"), ("userAccountControl", "4096"),
            ("objectGUID", guid(900).bytes_le)]),
    ]
    for i in range(extra_users):
        out.append(_user(f"CN=Sales Person {i},OU=Sales,{AD_STAFF}", 200 + i, f"sales{i}",
                         manager=manager, extra=(("department", "Sales"),)))
    return "".join(out)
