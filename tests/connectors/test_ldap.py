"""connectors.ldap against real slapd instances (OpenLDAP-shaped and AD-shaped)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
import structlog

from connectors.ldap import LdapConnector
from connectors.ldap.entries import guid_text, normalize_dn, sid_text
from connectors.registry import build_connector
from orgsync.config import config_from_dict
from orgsync.errors import ConfigError, SourceError
from orgsync.model import Status
from orgsync.validate import validate
from tests.connectors.conftest import OPENLDAP_USERS
from tests.connectors.ldap import data
from tests.connectors.ldap.slapd import Slapd, available, free_port


def openldap_connector(server: Slapd, **extra: Any) -> LdapConnector:
    """The openldap preset, bound as the (size-limited) reader account (over loopback ldap://)."""
    options = {"preset": "openldap", "url": server.url, "bind_dn": data.READER_DN,
               "bind_password": data.READER_PASSWORD, "base_dn": data.PEOPLE,
               "allow_plaintext": True, **extra}
    return LdapConnector.from_config(options, base_dir=Path("/tmp"), file="orgsync.yaml")


def ad_connector(server: Slapd, **extra: Any) -> LdapConnector:
    """The ad preset on OU=Staff, bound as the reader account (over loopback ldap://)."""
    options = {"preset": "ad", "url": server.url, "bind_dn": data.AD_READER_DN,
               "bind_password": data.READER_PASSWORD, "base_dn": data.AD_STAFF,
               "allow_plaintext": True, **extra}
    return LdapConnector.from_config(options, base_dir=Path("/tmp"), file="orgsync.yaml")


class TestOpenLdap:
    def test_pages_past_the_size_limit(self, openldap: Slapd) -> None:
        """3,000 entries behind a 500-entry size limit all arrive through 15 pages of 200."""
        anonymous = ldap3.Connection(ldap3.Server("127.0.0.1", port=openldap.port),
                                     auto_bind=True)
        anonymous.search(data.PEOPLE, "(objectClass=inetOrgPerson)", attributes=["uid"])
        assert (len(anonymous.entries), anonymous.result["description"]) == (
            500, "sizeLimitExceeded")
        anonymous.unbind()

        result = openldap_connector(openldap, page_size=200).read()
        assert len(result.snapshot.employees) == OPENLDAP_USERS

    def test_ou_tree_managers_and_fields(self, openldap: Slapd) -> None:
        """OUs under base_dn are departments (keyed by entryUUID); manager DNs resolve to keys."""
        result = openldap_connector(openldap).read()
        depts = {d.name: d for d in result.snapshot.departments.values()}
        assert sorted(depts) == ["Finance", "Sales", "平台组", "研发部"]
        assert depts["平台组"].parent_key == depts["研发部"].key
        assert depts["研发部"].parent_key is None
        by_uid = {e.email: e for e in result.snapshot.employees.values()}
        boss, u5 = by_uid["u0@example.com"], by_uid["u5@example.com"]
        assert (u5.name, u5.mobile, u5.employee_no, u5.job_title) == (
            "员工5", "+8613800000005", "000005", "工程师")
        assert u5.manager_key == boss.key  # written as UID=...,OU=...: DNs compare normalised
        assert (u5.profile, boss.profile) == ({"work_station": "3F-12"}, {})  # roomNumber
        assert result.profile_fields == {"work_station"}
        assert u5.department_keys == (depts["研发部"].key,)
        assert by_uid["u4@example.com"].department_keys == (depts["平台组"].key,)
        assert len(boss.key) == 36  # an entryUUID

    def test_manager_outside_the_base_is_cleared_with_a_warning(self, openldap: Slapd) -> None:
        """A manager DN no entry has (outside the base) clears the field; the person proceeds."""
        result = openldap_connector(openldap).read()
        [issue] = result.issues
        assert issue.severity == "warning"
        assert issue.field == "manager_key"
        assert issue.where == f"ldap:uid=u00004,ou=平台组,ou=研发部,{data.PEOPLE}"
        assert issue.reason.startswith(f"manager 'uid=ghost,ou=elsewhere,{data.OPENLDAP_BASE}' is "
                                       "not among the entries read")
        assert result.snapshot.employees[str(issue.key)].manager_key is None
        clean = validate(result)
        assert clean.errors() == []

    def test_departments_from_an_attribute_and_uid_keys(self, openldap: Slapd) -> None:
        """departments: from attribute builds the tree from departmentNumber paths."""
        result = openldap_connector(
            openldap, departments={"from": "attribute", "field": "departmentNumber"},
            mapping={"employees": {"key": "uid"}}).read()
        assert sorted(result.snapshot.departments) == [
            "Finance", "Sales", "研发部", "研发部/平台组"]
        assert result.snapshot.employees["u00004"].department_keys == ("研发部/平台组",)
        assert result.snapshot.employees["u00001"].department_keys == ("研发部",)
        assert result.snapshot.employees["u00002"].manager_key == "u00000"

    def test_match_values_are_escaped(self, openldap: Slapd) -> None:
        """match: values with ( ) * & are escaped: '*' is a literal, not a wildcard."""
        result = openldap_connector(openldap, match={"title": "R&D (Beijing)*"},
                                    mapping={"employees": {"key": "uid"}}).read()
        assert sorted(result.snapshot.employees) == ["u00001", "u00002"]


class TestActiveDirectory:
    def test_ad_preset_on_an_ad_shaped_schema(self, ad: Slapd) -> None:
        """objectGUID keys, UAC bit 2 = leaver, OU departments, computers skipped, UPN fallback."""
        result = ad_connector(ad, page_size=10).read()  # 44 users behind a size limit of 20
        emps = result.snapshot.employees
        assert len(emps) == 44
        jdoe, alice, bob = (emps[str(data.guid(n))] for n in (101, 102, 103))
        assert (jdoe.name, jdoe.email, jdoe.mobile, jdoe.employee_no) == (
            "John Doe", "jdoe@example.com", "+8613800000101", "E00101")
        assert alice.name == "Smith, Alice"
        assert jdoe.profile == {"work_station": "B2-0417"}  # physicalDeliveryOfficeName
        assert alice.email == "asmith@corp.example.com"  # no mail: userPrincipalName, lower-cased
        assert alice.status is Status.ACTIVE  # 66048 = enabled + password never expires
        assert bob.status is Status.TERMINATED  # 514 = disabled
        assert alice.manager_key == jdoe.key
        depts = result.snapshot.departments
        assert {d.name: d.parent_key for d in depts.values()} == {
            "Engineering": None, "Platform": str(data.guid(2)), "Sales": None}
        assert alice.department_keys == (str(data.guid(3)),)
        assert str(data.guid(900)) not in emps  # BUILD01 is a computer

    def test_manager_dn_outside_the_base(self, ad: Slapd) -> None:
        """Chris's manager lives in OU=Contractors, outside base_dn: a warning, manager cleared."""
        result = ad_connector(ad).read()
        assert [(i.key, i.field, i.severity) for i in result.issues] == [
            (str(data.guid(104)), "manager_key", "warning")]
        assert "'CN=Carl Contractor,OU=Contractors," in result.issues[0].reason
        assert result.snapshot.employees[str(data.guid(104))].manager_key is None

    def test_sam_account_name_key_and_department_attribute(self, ad: Slapd) -> None:
        """Overrides on the preset: sAMAccountName as key, AD's department text as the tree."""
        result = ad_connector(ad, departments={"from": "attribute", "field": "department"},
                              mapping={"employees": {"key": "sAMAccountName"}}).read()
        assert result.snapshot.employees["asmith"].department_keys == ("Engineering/Platform",)
        assert result.snapshot.employees["asmith"].manager_key == "jdoe"
        assert sorted(result.snapshot.departments) == ["Engineering", "Engineering/Platform",
                                                       "Sales"]

    def test_binary_identity_values(self) -> None:
        """objectGUID is little-endian on the wire; objectSid prints as S-1-5-21-…."""
        assert guid_text(data.guid(101).bytes_le) == "12340000-0000-0000-0000-000000000101"
        assert sid_text(data.sid(1104)) == "S-1-5-21-1-2-3-1104"
        assert normalize_dn("CN=John Doe, OU=Eng,DC=Corp") == "cn=john doe,ou=eng,dc=corp"


class TestFailures:
    def test_server_down(self) -> None:
        """Nothing listening: a clear SourceError naming the URL, never an empty org."""
        port = free_port()
        conn = LdapConnector.from_config(
            {"preset": "openldap", "url": f"ldap://127.0.0.1:{port}", "base_dn": data.PEOPLE,
             "timeout": 2}, base_dir=Path("/tmp"), file="o.yaml")
        with pytest.raises(SourceError, match=rf"cannot connect to ldap://127.0.0.1:{port}: "):
            conn.read()

    def test_bind_refused_does_not_echo_the_password(self, openldap: Slapd) -> None:
        """A wrong password is a SourceError naming the bind DN, not the password."""
        conn = openldap_connector(openldap, bind_password="not-the-password")
        with pytest.raises(SourceError, match=rf"bind as {data.READER_DN} refused: "
                                              r"invalidCredentials") as err:
            conn.read()
        assert "not-the-password" not in str(err.value)

    def test_missing_base_dn(self, openldap: Slapd) -> None:
        """A base DN that does not exist aborts the read."""
        conn = openldap_connector(openldap, base_dn=f"ou=nobody,{data.OPENLDAP_BASE}",
                                  departments={"from": "none"})
        with pytest.raises(SourceError, match=r"base DN 'ou=nobody,dc=example,dc=com' does not "
                                              r"exist \(users\)"):
            conn.read()

    def test_nothing_matches(self, openldap: Slapd) -> None:
        """A filter that matches nobody is an error, not an org where everyone left."""
        conn = openldap_connector(openldap, user_filter="(uid=nobody-at-all)")
        with pytest.raises(SourceError, match=r"no entries match \(uid=nobody-at-all\)"):
            conn.read()


@pytest.fixture(scope="module")
def tls_slapd() -> Iterator[Slapd]:
    """A small slapd with a self-signed certificate (StartTLS)."""
    if not available() or shutil.which("openssl") is None:
        pytest.fail("slapd or openssl is not installed: run 'bash tests/run' "
                    "(it installs tests/debian-packages.txt)")
    with Slapd(base=data.OPENLDAP_BASE, ldif=data.openldap_ldif(10), tls=True) as server:
        yield server


class TestTls:
    def test_start_tls_verifies_the_certificate_by_default(self, tls_slapd: Slapd) -> None:
        """An untrusted (self-signed) certificate is refused unless tls.ca_file trusts it."""
        with pytest.raises(SourceError, match=r"cannot connect to .*CERTIFICATE_VERIFY_FAILED"):
            openldap_connector(tls_slapd, start_tls=True).read()
        trusted = openldap_connector(tls_slapd, start_tls=True,
                                     tls={"ca_file": str(tls_slapd.certificate)})
        assert len(trusted.read().snapshot.employees) == 10

    def test_ldaps_verifies_the_certificate_by_default(self, tls_slapd: Slapd) -> None:
        """ldaps:// refuses the self-signed certificate by default and accepts it via ca_file."""
        assert tls_slapd.ldaps_url is not None
        with pytest.raises(SourceError, match=r"cannot connect to ldaps://.*CERTIFICATE_VERIFY"):
            openldap_connector(tls_slapd, url=tls_slapd.ldaps_url, timeout=5).read()
        trusted = openldap_connector(tls_slapd, url=tls_slapd.ldaps_url,
                                     tls={"ca_file": str(tls_slapd.certificate)})
        assert len(trusted.read().snapshot.employees) == 10

    def test_verify_false_is_explicit(self, tls_slapd: Slapd) -> None:
        """tls.verify: false turns verification off (and says so in the log)."""
        conn = openldap_connector(tls_slapd, start_tls=True, tls={"verify": False})
        assert conn.verify is False
        assert len(conn.read().snapshot.employees) == 10


class TestOptions:
    @pytest.mark.parametrize(("options", "key", "text"), [
        ({"preset": "novell"}, "source.preset", "unknown ldap preset 'novell'"),
        ({"url": "http://dc1"}, "source.url", "is not an ldap:// or ldaps:// URL"),
        ({"base_dn": None}, "source.base_dn", "is required"),
        ({"user_filter": "(&(uid=x)"}, "source.user_filter", "is not a valid LDAP filter"),
        ({"bind_password": None}, "source.bind_password", "is required"),
        ({"url": "ldaps://dc1", "start_tls": True}, "source.start_tls", "cannot be used with"),
        ({"pagesize": 10}, "source.pagesize", "did you mean 'page_size'"),
        ({"departments": {"from": "attribute"}}, "source.departments.field", "is required"),
    ])
    def test_bad_options(self, options: dict[str, Any], key: str, text: str) -> None:
        """Each bad option is a ConfigError naming source.<key>."""
        base = {"preset": "openldap", "url": "ldap://127.0.0.1:389", "bind_dn": "cn=x",
                "bind_password": "pw", "base_dn": "dc=x", "allow_plaintext": True, **options}
        with pytest.raises(ConfigError, match=text) as err:
            LdapConnector.from_config(base, base_dir=Path("/x"), file="o.yaml")
        assert err.value.key == key

    def test_password_file_and_registry(self, tmp_path: Path) -> None:
        """bind_password_file is read; build_connector knows type: ldap; the repr hides it."""
        (tmp_path / "pw").write_text("file-secret\n")
        cfg = config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
                                "source": {"type": "ldap", "preset": "ad", "url": "ldaps://dc1",
                                           "bind_dn": "CN=svc", "bind_password_file": "pw",
                                           "base_dn": "DC=corp"}}, base_dir=tmp_path)
        conn = build_connector(cfg.source)
        assert isinstance(conn, LdapConnector)
        assert (conn.bind_password, conn.port, conn.use_ssl) == ("file-secret", 636, True)
        assert "file-secret" not in repr(conn)


class _Listener:
    """A plain TCP listener on loopback that records every byte sent to it, then hangs up."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.connections += 1
                with conn:
                    conn.settimeout(5)
                    with contextlib.suppress(OSError):
                        self.received += conn.recv(65536)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


PLAINTEXT_PASSWORD = "ldap-bind-pw-3f8a"


class TestPlaintextBind:
    def options(self, port: int, **extra: Any) -> dict[str, Any]:
        return {"preset": "openldap", "url": f"ldap://127.0.0.1:{port}", "bind_dn": "cn=reader",
                "bind_password": PLAINTEXT_PASSWORD, "base_dn": "dc=x", "timeout": 2, **extra}

    def test_password_bind_over_plain_ldap_is_refused(self) -> None:
        """ldap:// without start_tls and a bind password: a ConfigError, and no connection made."""
        listener = _Listener()
        try:
            with pytest.raises(ConfigError) as err:
                LdapConnector.from_config(self.options(listener.port), base_dir=Path("/tmp"),
                                          file="orgsync.yaml")
        finally:
            listener.close()
        assert err.value.key == "source.url"
        assert str(err.value) == (
            f"orgsync.yaml: source.url: 'ldap://127.0.0.1:{listener.port}' without start_tls "
            "would send the bind password unencrypted (use ldaps:// or start_tls: true; on a "
            "network you trust, allow_plaintext: true accepts it (with a warning on every run))")
        assert listener.connections == 0
        # anonymous, ldaps:// and start_tls are not affected
        for extra in ({"bind_dn": None, "bind_password": None}, {"start_tls": True},
                      {"url": "ldaps://127.0.0.1:1"}):
            LdapConnector.from_config(self.options(1, **extra), base_dir=Path("/tmp"),
                                      file="o.yaml")

    def test_allow_plaintext_warns_on_every_run(self) -> None:
        """allow_plaintext: true binds in clear (the listener sees the password) and warns each run."""
        listener = _Listener()
        try:
            conn = LdapConnector.from_config(self.options(listener.port, allow_plaintext=True),
                                             base_dir=Path("/tmp"), file="o.yaml")
            with structlog.testing.capture_logs() as logs:
                for _ in range(2):
                    with pytest.raises(SourceError):
                        conn.read()
        finally:
            listener.close()
        assert PLAINTEXT_PASSWORD.encode() in listener.received  # BER carries it in clear
        warnings = [e for e in logs if e["event"] == "ldap.plaintext_bind"]
        assert [(e["log_level"], e["url"]) for e in warnings] == [
            ("warning", f"ldap://127.0.0.1:{listener.port}")] * 2
