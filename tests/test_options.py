"""orgsync.options: the one dialect every key of the config file is read with.

Each table row is (value as written, arguments, expected): a value, or the exact
message of the ConfigError (``file: dotted.key: message (remedy)``). ``ABSENT``
means the key is not written at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.hris import HrisConnector
from connectors.ldap import LdapConnector
from orgsync.errors import ConfigError
from orgsync.options import Section, interpolate

ABSENT: Any = object()
BASE = Path("/etc/orgsync")


def section(value: Any = ABSENT, **more: Any) -> Section:
    data = {} if value is ABSENT else {"k": value}
    return Section({**data, **more}, name="s", file="c.yaml", base_dir=BASE)


def check(read: Callable[[Section], Any], value: Any, expected: Any) -> None:
    """``read`` of a section holding ``k: value`` gives ``expected`` (a value or an error text)."""
    s = section(value)
    if isinstance(expected, str) and expected.startswith("c.yaml: "):
        with pytest.raises(ConfigError) as err:
            read(s)
        assert str(err.value) == expected
        assert err.value.file == "c.yaml"
        assert str(err.value.key).startswith("s.k")
    else:
        assert read(s) == expected


QUOTE = "quote the value if YAML reads it as something else"


@pytest.mark.parametrize(("value", "expected"), [
    ("text", "text"),
    ("  padded \n", "padded"),
    (ABSENT, "dflt"),
    (None, "dflt"),
    (5, f"c.yaml: s.k: expected a non-empty string, got 5 ({QUOTE})"),
    (True, f"c.yaml: s.k: expected a non-empty string, got true ({QUOTE})"),
    ("  ", f"c.yaml: s.k: expected a non-empty string, got '  ' ({QUOTE})"),
    (["a"], f"c.yaml: s.k: expected a non-empty string, got a list ({QUOTE})"),
])
def test_string(value: Any, expected: Any) -> None:
    """Text is stripped; numbers, booleans and blanks are refused; null takes the default."""
    check(lambda s: s.string("k", "dflt"), value, expected)


def test_string_required_and_unstripped() -> None:
    """No default: required, pointing at a near-miss key when one is written (missing() names it
    for any required key); strip=False keeps whitespace (a tab delimiter)."""
    with pytest.raises(ConfigError) as err:
        section().string("k")
    assert str(err.value) == "c.yaml: s.k: is required (add 'k:' to the 's' section)"
    with pytest.raises(ConfigError) as err:
        section(ABSENT, kk="x").string("k")
    assert str(err.value) == "c.yaml: s.k: is required ('kk' is written: did you mean 'k'?)"
    assert section().missing("k", "e.g. k: 1").remedy == "e.g. k: 1"
    assert section(ABSENT, employes="e.csv").missing("employees").remedy == \
        "'employes' is written: did you mean 'employees'?"
    assert section("\t").string("k", ",", strip=False) == "\t"
    assert section(None).string("k", None) is None


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3),
    ("3", 3),
    (" 4 ", 4),
    (3.0, 3),
    (ABSENT, 7),
    (None, 7),
    ("lots", "c.yaml: s.k: expected an integer, got 'lots' (write e.g. k: 3)"),
    ("3.5", "c.yaml: s.k: expected an integer, got '3.5' (write e.g. k: 3)"),
    (2.5, "c.yaml: s.k: expected an integer, got 2.5 (write e.g. k: 3)"),
    (True, "c.yaml: s.k: expected an integer, got true (write e.g. k: 3)"),
    (0, "c.yaml: s.k: 0 is out of range (use a value >= 1 and <= 10)"),
    ("11", "c.yaml: s.k: 11 is out of range (use a value >= 1 and <= 10)"),
])
def test_integer(value: Any, expected: Any) -> None:
    """An int default reads whole numbers, also written as text, within bounds."""
    check(lambda s: s.number("k", 7, minimum=1, maximum=10), value, expected)


@pytest.mark.parametrize(("value", "expected"), [
    (2.5, 2.5),
    ("2.5", 2.5),
    (2, 2.0),
    (None, 1.0),
    (0, "c.yaml: s.k: 0.0 is out of range (use a value > 0)"),
    (math.inf, "c.yaml: s.k: expected a number, got inf (write e.g. k: 2.5)"),
    ("nan", "c.yaml: s.k: expected a number, got 'nan' (write e.g. k: 2.5)"),
    ("soon", "c.yaml: s.k: expected a number, got 'soon' (write e.g. k: 2.5)"),
])
def test_number(value: Any, expected: Any) -> None:
    """A float default reads finite numbers, also written as text; strict_minimum excludes it."""
    check(lambda s: s.number("k", 1.0, minimum=0, strict_minimum=True), value, expected)


@pytest.mark.parametrize(("value", "expected"), [
    (90, 90.0),
    ("2.5", 2.5),
    ("30s", 30.0),
    ("1h30m", 5400.0),
    ("1500ms", 1.5),
    ("1d", 86400.0),
    (None, 60.0),
    ("soon", "c.yaml: s.k: expected a duration, got 'soon' (write e.g. k: 90, 30s, 15m, 1h30m)"),
    (True, "c.yaml: s.k: expected a duration, got true (write e.g. k: 90, 30s, 15m, 1h30m)"),
    ("0.5s", "c.yaml: s.k: 0.5s is too short (use at least 1s)"),
])
def test_duration(value: Any, expected: Any) -> None:
    """Seconds as a number or with units; null takes the default."""
    check(lambda s: s.duration("k", 60.0, minimum=1.0), value, expected)


@pytest.mark.parametrize(("value", "expected"), [
    (True, True),
    (False, False),
    ("yes", True),
    ("OFF", False),
    (" 1 ", True),
    ("false", False),
    (None, True),
    ("sometimes", "c.yaml: s.k: expected true or false, got 'sometimes' "
                  "(write k: true or k: false)"),
    (1, "c.yaml: s.k: expected true or false, got 1 (write k: true or k: false)"),
])
def test_boolean(value: Any, expected: Any) -> None:
    """Booleans, also as the texts ${VAR} gives (true/yes/on/1, any case)."""
    check(lambda s: s.boolean("k", True), value, expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("GET", "GET"),
    ("post", "POST"),
    (" Get ", "GET"),
    (None, "GET"),
    ("PUTS", "c.yaml: s.k: 'PUTS' is not one of GET, POST, PUT (did you mean 'PUT'?)"),
    ("DELETE", "c.yaml: s.k: 'DELETE' is not one of GET, POST, PUT (use one of GET, POST, PUT)"),
    (3, "c.yaml: s.k: 3 is not one of GET, POST, PUT (use one of GET, POST, PUT)"),
])
def test_choice(value: Any, expected: Any) -> None:
    """Any case in, the choice as spelled out."""
    check(lambda s: s.choice("k", "GET", ("GET", "POST", "PUT")), value, expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("manager", ("manager",)),
    (["employee", "Manager", "manager"], ("employee", "manager")),
    (None, ("manager",)),
    ([], "c.yaml: s.k: expected a list of receivers, got a list "
         "(write e.g. k: [manager, employee])"),
    (["manager", "boss"], "c.yaml: s.k[1]: 'boss' is not one of manager, employee "
                          "(write e.g. k: [manager, employee])"),
    ({"a": 1}, "c.yaml: s.k: expected a list of receivers, got a dict "
               "(write e.g. k: [manager, employee])"),
])
def test_choices(value: Any, expected: Any) -> None:
    """One choice or a list of them, each once, at least one."""
    check(lambda s: s.choices("k", ("manager",), ("manager", "employee"), what="receivers"),
          value, expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("admin*", ("admin*",)),
    ([" a ", "b"], ("a", "b")),
    (ABSENT, ()),
    ([], ()),
    ([""], "c.yaml: s.k: expected a text or a list of texts, got a list "
           "(write e.g. k: [first, second])"),
    (5, "c.yaml: s.k: expected a text or a list of texts, got 5 (write e.g. k: [first, second])"),
    (["a", 1], "c.yaml: s.k: expected a text or a list of texts, got a list "
               "(write e.g. k: [first, second])"),
])
def test_strings(value: Any, expected: Any) -> None:
    """A text is a list of one."""
    check(lambda s: s.strings("k"), value, expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("ca.pem", BASE / "ca.pem"),
    ("/abs/ca.pem", Path("/abs/ca.pem")),
    ("~/ca.pem", Path.home() / "ca.pem"),
    (None, None),
    (5, f"c.yaml: s.k: expected a non-empty string, got 5 ({QUOTE})"),
])
def test_path(value: Any, expected: Any) -> None:
    """Paths expand ~ and resolve against the config file's directory."""
    check(lambda s: s.path("k"), value, expected)


class TestSecret:
    def test_value_or_file(self, tmp_path: Path) -> None:
        """The value itself, or the stripped content of key_file (relative to the config)."""
        assert section(" s3cret ").secret("k") == "s3cret"
        (tmp_path / "k.txt").write_text("from-file\n", encoding="utf-8")
        s = Section({"k_file": "k.txt"}, name="s", file="c.yaml", base_dir=tmp_path)
        assert s.secret("k") == "from-file"
        assert section().secret("k", required=False) is None

    @pytest.mark.parametrize(("data", "expected"), [
        ({"k": "a", "k_file": "b"},
         "c.yaml: s.k: both 'k' and 'k_file' are set (keep only one of 'k' and 'k_file')"),
        ({}, "c.yaml: s.k: is required (set 'k' (e.g. '${ENV_VAR}') or 'k_file')"),
        ({"k": ["hunter2"]}, "c.yaml: s.k: expected a non-empty string "
                             "(quote the value, or check the variable it comes from)"),
        ({"k_file": 5}, "c.yaml: s.k_file: expected a file path, got 5 "
                        "(e.g. k_file: /run/secrets/k)"),
        ({"k_file": "missing"}, "c.yaml: s.k_file: cannot read secret file '{dir}/missing': "
                                "No such file or directory (check the path and the file's "
                                "permissions)"),
        ({"k_file": "empty"}, "c.yaml: s.k_file: secret file '{dir}/empty' is empty "
                              "(write the secret into the file)"),
        ({"k_file": "binary"}, "c.yaml: s.k_file: secret file '{dir}/binary' is not UTF-8 text "
                               "(name the file that holds only the secret, as text)"),
        ({"k_file": "nul"}, "c.yaml: s.k_file: secret file '{dir}/nul' is not UTF-8 text "
                            "(name the file that holds only the secret, as text)"),
        ({"k_file": "/dev/zero"}, "c.yaml: s.k_file: secret file '/dev/zero' is larger than "
                                  "64 KiB (name the file that holds only the secret)"),
        ({"k_file": "big"}, "c.yaml: s.k_file: secret file '{dir}/big' is larger than 64 KiB "
                            "(name the file that holds only the secret)"),
    ])
    def test_refused(self, tmp_path: Path, data: dict[str, Any], expected: str) -> None:
        """Both, neither, a non-text value or an unusable file (binary, endless, too large);
        the value is never echoed."""
        (tmp_path / "empty").write_text(" \n", encoding="utf-8")
        (tmp_path / "binary").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(256)))
        (tmp_path / "nul").write_bytes(b"hunter2\0\n")
        (tmp_path / "big").write_text("hunter2" * 10_000, encoding="utf-8")
        s = Section(data, name="s", file="c.yaml", base_dir=tmp_path)
        with pytest.raises(ConfigError) as err:
            s.secret("k")
        assert str(err.value) == expected.replace("{dir}", str(tmp_path))
        assert "hunter2" not in str(err.value)


class TestSections:
    def test_nested_section_keys_and_mappings(self) -> None:
        """A nested section names its keys with the full dotted path; mapping() is as written."""
        s = Section({"tls": {"verify": "no"}, "headers": {"X-A": "1"}}, name="source",
                    file="c.yaml", base_dir=BASE)
        assert s.section("tls").boolean("verify", True) is False
        assert s.mapping("headers") == {"X-A": "1"}
        assert s.mapping("params") == {}
        with pytest.raises(ConfigError) as err:
            s.section("headers").number("X-A", 0, maximum=0)
        assert str(err.value) == ("c.yaml: source.headers.X-A: 1 is out of range "
                                  "(use a value >= 0 and <= 0)")

    @pytest.mark.parametrize(("read", "expected"), [
        (lambda s: s.section("k"), "c.yaml: s.k: expected a mapping, got 'x' "
                                   "(write 'k:' followed by indented 'key: value' lines)"),
        (lambda s: s.mapping("k"), "c.yaml: s.k: expected a mapping, got 'x' "
                                   "(write 'k:' followed by indented 'name: value' lines)"),
    ])
    def test_not_a_mapping(self, read: Callable[[Section], Any], expected: str) -> None:
        """A scalar where a mapping belongs."""
        check(read, "x", expected)

    def test_done_rejects_unknown_keys(self) -> None:
        """Unread keys are errors with a did-you-mean, or the list of known keys."""
        s = section(ABSENT, timeout=3, time_out=4)
        s.number("timeout", 1)
        with pytest.raises(ConfigError) as err:
            s.done()
        assert str(err.value) == "c.yaml: s.time_out: unknown key (did you mean 'timeout'?)"
        s = section(ABSENT, zzz=1, port=2)
        s.number("port", 1)
        with pytest.raises(ConfigError) as err:
            s.done()
        assert str(err.value) == "c.yaml: s.zzz: unknown key (known keys: port)"

    def test_null_is_absent(self) -> None:
        """A null key takes the default and is no unknown key (it removes a preset's key);
        given() still sees it, for keys where null means off."""
        s = section(None, removed=None)
        assert s.number("k", 5) == 5
        assert s.given("k")
        assert not s.given("other")
        s.done()

    def test_rest_hands_over_the_unread_keys(self) -> None:
        """rest() returns what nobody read and counts it as read."""
        s = section(ABSENT, type="csv", employees="e.csv")
        assert s.string("type") == "csv"
        assert s.rest() == {"employees": "e.csv"}
        s.done()


def test_interpolation_gives_text_the_readers_accept() -> None:
    """${VAR} always gives text: numbers, booleans and durations read from it."""
    data = interpolate({"n": "${N}", "b": "${B:-yes}", "d": "${D:-15m}"}, "", "c.yaml",
                       {"N": "2.5"})
    s = Section(data, name="s", file="c.yaml", base_dir=BASE)
    assert (s.number("n", 1.0), s.boolean("b", False), s.duration("d", 0.0)) == (2.5, True, 900.0)


HRIS: dict[str, Any] = {"base_url": "http://x", "employees": {"path": "/p"},
                        "departments": {"from": "path", "field": "d"},
                        "mapping": {"employees": {"key": "id"}}}
LDAP: dict[str, Any] = {"preset": "openldap", "url": "ldap://127.0.0.1:389", "base_dn": "dc=x"}


class TestConnectorsShareTheDialect:
    """What orgsync's own sections accept, the connectors accept, and the reverse."""

    def test_text_numbers_booleans_and_any_case_choices(self) -> None:
        """"2.5", "no", "post" and "3" (what ${VAR} gives) read as they do in orgsync's sections."""
        conn = HrisConnector.from_config(
            {**HRIS, "timeout": "2.5", "max_retries": "3", "tls": {"verify": "no"},
             "employees": {"path": "/p", "method": "post"}},
            base_dir=BASE, file="c.yaml")
        assert (conn.timeout, conn.max_retries, conn.verify, conn.employees.method) == (
            2.5, 3, False, "POST")

    @pytest.mark.parametrize(("options", "expected"), [
        ({"mobile_region": "China"},
         "c.yaml: source.mobile_region: 'China' is not a two-letter region code "
         "(e.g. CN, US, SG)"),
        ({"base_dn": 42}, f"c.yaml: source.base_dn: expected a non-empty string, got 42 ({QUOTE})"),
        ({"page_size": 2.5}, "c.yaml: source.page_size: expected an integer, got 2.5 "
                             "(write e.g. page_size: 3)"),
        ({"pagesize": 10}, "c.yaml: source.pagesize: unknown key (did you mean 'page_size'?)"),
    ])
    def test_refusals_read_as_in_orgsync(self, options: dict[str, Any], expected: str) -> None:
        """A region that is no region, an id YAML read as a number, a fraction of a page."""
        with pytest.raises(ConfigError) as err:
            LdapConnector.from_config({**LDAP, **options}, base_dir=BASE, file="c.yaml")
        assert str(err.value) == expected
