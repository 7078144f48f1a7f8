"""connectors.hris against real HTTP servers: scim2-server for SCIM, a stdlib server for the rest."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connectors.hris import HrisConnector
from connectors.registry import build_connector
from connectors.source_options import deep_merge
from orgsync.config import config_from_dict
from orgsync.errors import ConfigError, SourceError
from orgsync.ledger import Ledger
from orgsync.model import EmployeeType, Status
from orgsync.runner import make_plan
from orgsync.validate import validate
from tests.connectors.json_server import Call, JsonServer, Reply
from tests.connectors.scim_server import ENTERPRISE, ScimTestServer
from tests.sandbox_run import with_client

TOKEN = "s3cret-token"


def person(i: int) -> dict[str, Any]:
    """One employee record in the generic test shape."""
    return {"id": f"{i:05d}", "name": f"员工{i}", "email": f"e{i}@example.com",
            "mobile": f"138{i:08d}", "dept": "研发中心/平台部" if i % 2 else "销售部",
            "boss": None if i == 0 else "00000"}


PEOPLE = [person(i) for i in range(250)]
GENERIC = {"key": "id", "name": "name", "email": "email", "mobile": "mobile",
           "manager_key": "boss"}


def hris(url: str, **extra: Any) -> HrisConnector:
    """A generic hris connector on ``url`` (extra options merged on top)."""
    options = deep_merge({
        "base_url": url, "backoff": 0.01,
        "employees": {"path": "/people", "records": "data"},
        "departments": {"from": "path", "field": "dept"},
        "mapping": {"employees": GENERIC},
    }, extra)
    return HrisConnector.from_config(options, base_dir=Path("/tmp"), file="orgsync.yaml")


def offset_pages(call: Call, people: list[dict[str, Any]] = PEOPLE) -> Reply:
    """``?offset=&limit=`` paging with a total."""
    offset, limit = int(call.query["offset"]), int(call.query["limit"])
    return Reply(body={"data": people[offset:offset + limit], "total": len(people)})


OFFSET = {"type": "offset", "size": 100, "total": "total"}


# --- SCIM 2.0 against scim2-server ----------------------------------------------------------


@pytest.fixture(scope="module")
def scim() -> Iterator[tuple[ScimTestServer, dict[str, str]]]:
    """scim2-server with 230 users (enterprise extension, managers, 23 inactive)."""
    with ScimTestServer(token=TOKEN) as srv:
        ids: dict[str, str] = {}
        boss: str | None = None
        for i in range(230):
            ext: dict[str, Any] = {"employeeNumber": f"{i:06d}",
                                   "department": ["研发中心/平台部/基础架构组", "Sales", "财务部"][i % 3]}
            if boss:
                ext["manager"] = {"value": boss}
            user = srv.create_user({
                "userName": f"emp{i:04d}", "externalId": f"E{i:05d}",
                "name": {"givenName": "三", "familyName": f"张{i}"},
                "title": "工程师", "active": i % 10 != 3, "userType": "Employee" if i % 7 else "Intern",
                "emails": [{"value": f"emp{i}@example.com", "type": "work", "primary": True}],
                "phoneNumbers": [{"value": f"+86 139 {i:04d} 0000", "type": "mobile"}],
                ENTERPRISE: ext,
            })
            ids[f"emp{i:04d}"] = user["id"]
            boss = boss or user["id"]
        yield srv, ids


def scim_connector(srv: ScimTestServer, **extra: Any) -> HrisConnector:
    return HrisConnector.from_config(
        {"preset": "scim", "base_url": srv.base_url, "auth": {"token": TOKEN}, **extra},
        base_dir=Path("/tmp"), file="orgsync.yaml")


class TestScimPreset:
    def test_reads_every_user_across_pages(self, scim: tuple[ScimTestServer, dict[str, str]]
                                           ) -> None:
        """The scim preset pages /Users (1-based startIndex) and maps the enterprise extension."""
        srv, ids = scim
        conn = scim_connector(srv, employees={"pagination": {"size": 40}})
        data = conn.read()
        assert data.issues == []
        emps = data.snapshot.employees
        assert len(emps) == 230
        e7 = emps[ids["emp0007"]]
        assert (e7.name, e7.email, e7.mobile, e7.employee_no, e7.job_title) == (
            "张7三", "emp7@example.com", "+8613900070000", "000007", "工程师")
        assert e7.manager_key == ids["emp0000"]
        assert e7.employee_type is EmployeeType.INTERN
        assert emps[ids["emp0003"]].status is Status.TERMINATED
        assert emps[ids["emp0001"]].department_keys == ("Sales",)
        assert emps[ids["emp0000"]].department_keys == ("研发中心/平台部/基础架构组",)
        assert sorted(data.snapshot.departments) == [
            "Sales", "研发中心", "研发中心/平台部", "研发中心/平台部/基础架构组", "财务部"]
        assert data.snapshot.departments["研发中心/平台部"].parent_key == "研发中心"
        assert validate(data).issues == []

    def test_bad_token_is_a_source_error_without_the_token(
            self, scim: tuple[ScimTestServer, dict[str, str]]) -> None:
        """A refused token aborts the read with HTTP 401; the token is not in the message."""
        srv, _ = scim
        conn = HrisConnector.from_config(
            {"preset": "scim", "base_url": srv.base_url, "auth": {"token": "wrong-token"}},
            base_dir=Path("/tmp"), file="o.yaml")
        with pytest.raises(SourceError, match=r"hris /Users page 1: HTTP 401 .*check the "
                                              r"credentials") as err:
            conn.read()
        assert "wrong-token" not in str(err.value)

    def test_external_id_as_key_with_manager_ref(
            self, scim: tuple[ScimTestServer, dict[str, str]]) -> None:
        """key: externalId + manager_ref: id resolves manager.value (an id) to the manager's key."""
        srv, _ = scim
        conn = scim_connector(srv, manager_ref="id", mapping={"employees": {"key": "externalId"}})
        emps = conn.read().snapshot.employees
        assert emps["E00042"].manager_key == "E00000"
        assert emps["E00000"].manager_key is None


# --- generic shapes against a server of our own -----------------------------------------------


class TestPagination:
    def test_offset_limit_with_oauth2_client_credentials(self) -> None:
        """OAuth2 client credentials fetch a token once; offset paging reads all 250 records."""
        def handle(call: Call) -> Reply:
            if call.path == "/oauth/token":
                ok = call.form == {"grant_type": "client_credentials", "client_id": "cid",
                                   "client_secret": "csecret", "scope": "people:read"}
                return Reply(200, {"access_token": "tok-1", "expires_in": 3600}) if ok \
                    else Reply(401, {"error": "invalid_client"})
            if call.headers.get("authorization") != "Bearer tok-1":
                return Reply(401, {"error": "no token"})
            return offset_pages(call)

        with JsonServer(handle) as srv:
            conn = hris(srv.url, auth={"type": "oauth2", "token_url": "/oauth/token",
                                       "client_id": "cid", "client_secret": "csecret",
                                       "scope": "people:read"},
                        employees={"path": "/people", "records": "data", "pagination": OFFSET})
            data = conn.read()
        assert len(data.snapshot.employees) == 250
        assert [c.path for c in srv.calls].count("/oauth/token") == 1
        assert [c.query.get("offset") for c in srv.calls[1:]] == ["0", "100", "200"]
        assert data.snapshot.employees["00007"].manager_key == "00000"
        assert data.snapshot.employees["00007"].department_keys == ("研发中心/平台部",)

    def test_page_numbers_with_basic_auth(self) -> None:
        """page/page_size paging stops at the empty page; HTTP Basic is sent."""
        def handle(call: Call) -> Reply:
            assert call.headers["authorization"].startswith("Basic ")
            page, size = int(call.query["page"]), int(call.query["page_size"])
            return Reply(body={"items": PEOPLE[(page - 1) * size:page * size]})

        with JsonServer(handle) as srv:
            conn = hris(srv.url, auth={"type": "basic", "username": "u", "password": "p"},
                        employees={"path": "/people", "records": "items",
                                   "pagination": {"type": "page", "size": 60}})
            assert len(conn.read().snapshot.employees) == 250
        assert [c.query["page"] for c in srv.calls] == ["1", "2", "3", "4", "5", "6"]

    def test_cursor_as_next_url(self) -> None:
        """Cursor paging follows a next link given in the body (Personio v2 `_meta.links.next`)."""
        def handle(call: Call) -> Reply:
            at = int(call.query.get("after", 0))
            nxt = f"/people?after={at + 100}" if at + 100 < len(PEOPLE) else None
            return Reply(body={"_data": PEOPLE[at:at + 100], "_meta": {"links": {"next": nxt}}})

        with JsonServer(handle) as srv:
            conn = hris(srv.url, employees={"path": "/people", "records": "_data", "pagination": {
                "type": "cursor", "next": "_meta.links.next"}})
            assert len(conn.read().snapshot.employees) == 250
        assert len(srv.calls) == 3

    def test_link_header(self) -> None:
        """`Link: <...>; rel="next"` headers are followed to the end."""
        def handle(call: Call) -> Reply:
            at = int(call.query.get("from", 0))
            headers = ({"Link": f'<{call.path}?from={at + 100}>; rel="next"'}
                       if at + 100 < len(PEOPLE) else {})
            return Reply(body=PEOPLE[at:at + 100], headers=headers)

        with JsonServer(handle) as srv:
            conn = hris(srv.url, employees={"records": None, "pagination": {"type": "link"}})
            assert len(conn.read().snapshot.employees) == 250

    def test_page_token_has_more_in_a_feishu_envelope(self) -> None:
        """POST + page_token/has_more inside {code, msg, data}; a non-zero code aborts."""
        def handle(call: Call) -> Reply:
            assert call.method == "POST"
            assert call.body == {"fields": ["x"]}
            at = int(call.query.get("page_token", 0))
            more = at + 100 < len(PEOPLE)
            return Reply(body={"code": 0, "msg": "success", "data": {
                "items": PEOPLE[at:at + 100], "has_more": more,
                "page_token": str(at + 100) if more else ""}})

        with JsonServer(handle) as srv:
            request = {"path": "/search", "method": "POST", "body": {"fields": ["x"]},
                       "records": "data.items", "pagination": {
                           "type": "page_token", "next": "data.page_token",
                           "has_more": "data.has_more"}}
            conn = hris(srv.url, envelope={"code": "code", "message": "msg"}, employees=request)
            assert len(conn.read().snapshot.employees) == 250
            assert [c.query.get("page_token") for c in srv.calls] == [None, "100", "200"]

        with JsonServer(lambda c: Reply(body={"code": 1160102, "msg": "bad param"})) as srv:
            conn = hris(srv.url, envelope={"code": "code", "message": "msg"}, employees=request)
            with pytest.raises(SourceError, match=r"page 1: the API answered code=1160102 "
                                                  r"\(bad param\)"):
                conn.read()


class TestFailures:
    def test_429_storm_is_ridden_out(self) -> None:
        """Every page is refused three times with 429 + Retry-After: 0; all 250 still arrive."""
        refusals: dict[str, int] = {}

        def handle(call: Call) -> Reply:
            n = refusals.get(call.query["offset"], 0)
            if n < 3:
                refusals[call.query["offset"]] = n + 1
                return Reply(429, {"error": "slow down"}, {"Retry-After": "0"})
            return offset_pages(call)

        with JsonServer(handle) as srv:
            conn = hris(srv.url, employees={"path": "/people", "records": "data",
                                            "pagination": OFFSET})
            assert len(conn.read().snapshot.employees) == 250
        assert len(srv.calls) == 12

    def test_retry_after_is_honoured(self) -> None:
        """A 429 with Retry-After: 1 makes the connector wait a second before retrying."""
        first = [True]

        def handle(call: Call) -> Reply:
            if first[0]:
                first[0] = False
                return Reply(429, {}, {"Retry-After": "1"})
            return offset_pages(call)

        with JsonServer(handle) as srv:
            conn = hris(srv.url, employees={"path": "/people", "records": "data",
                                            "pagination": OFFSET})
            started = time.monotonic()
            conn.read()
            assert time.monotonic() - started >= 1.0

    def test_endless_429_gives_up(self) -> None:
        """A 429 storm longer than max_retries aborts the read."""
        with JsonServer(lambda c: Reply(429, {}, {"Retry-After": "0"})) as srv:
            conn = hris(srv.url, max_retries=2)
            with pytest.raises(SourceError, match=r"page 1: still rate limited \(HTTP 429\) "
                                                  r"after 3 attempts"):
                conn.read()

    def test_server_error_mid_pagination_aborts_the_run(self, tmp_path: Path) -> None:
        """A 500 on page 3 (after retries) is a SourceError: make_plan never diffs a partial org."""
        def handle(call: Call) -> Reply:
            if call.query["offset"] == "200":
                return Reply(500, text="<h1>Internal Server Error</h1>")
            return offset_pages(call)

        with JsonServer(handle) as srv:
            source = {"type": "hris", "base_url": srv.url, "backoff": 0.01, "max_retries": 2,
                      "employees": {"path": "/people", "records": "data", "pagination": OFFSET},
                      "departments": {"from": "path", "field": "dept"},
                      "mapping": {"employees": GENERIC}}
            cfg = config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
                                    "source": source, "ledger": {"url": "sqlite:///l.db"}},
                                   base_dir=tmp_path)
            ledger = Ledger(cfg.ledger.url)
            try:
                with pytest.raises(SourceError, match=r"hris /people page 3: HTTP 500 Internal "
                                                      r"Server Error.*\(3 attempts\)"):
                    with_client(cfg, lambda c: make_plan(cfg, ledger, c))
                assert ledger.runs(limit=1) == []
            finally:
                ledger.close()
        assert [c.query["offset"] for c in srv.calls] == ["0", "100", "200", "200", "200"]

    def test_truncated_pages_against_the_total(self) -> None:
        """A page that comes back empty before the announced total aborts (never a partial org)."""
        def handle(call: Call) -> Reply:
            offset = int(call.query["offset"])
            return Reply(body={"data": PEOPLE[offset:min(offset + 100, 200)], "total": 250})

        with JsonServer(handle) as srv:
            conn = hris(srv.url, employees={"path": "/people", "records": "data",
                                            "pagination": OFFSET})
            with pytest.raises(SourceError, match="empty page at offset 200 but the server "
                                                  "announced 250 records"):
                conn.read()

    def test_timeout(self) -> None:
        """A server slower than the timeout aborts the read after the retries."""
        with JsonServer(lambda c: Reply(body={"data": []}, delay=0.5)) as srv:
            conn = hris(srv.url, timeout=0.1, max_retries=1)
            with pytest.raises(SourceError, match=r"page 1: timed out after 0.1s \(2 attempts\)"):
                conn.read()

    def test_server_down(self) -> None:
        """Nothing listening: a clear SourceError, not an empty org."""
        with JsonServer(lambda c: Reply()) as srv:
            url = srv.url
        conn = hris(url, max_retries=0)
        with pytest.raises(SourceError, match=r"page 1: cannot connect \(ConnectError"):
            conn.read()

    def test_unstable_paging_is_refused(self) -> None:
        """The same record on two pages means the server's order moved: abort, do not guess."""
        def handle(call: Call) -> Reply:
            offset = int(call.query["offset"])
            page = PEOPLE[offset:offset + 100]
            if offset == 100:
                page = [PEOPLE[5], *page[1:]]
            return Reply(body={"data": page, "total": 250})

        with JsonServer(handle) as srv:
            conn = hris(srv.url, employees={"path": "/people", "records": "data",
                                            "pagination": OFFSET})
            with pytest.raises(SourceError, match="record '00005' is on page 1 and on page 2: "
                                                  "the server's paging is unstable"):
                conn.read()

    def test_no_records_is_an_error(self) -> None:
        """A wrong records path (no employees at all) aborts instead of emptying Feishu."""
        with (JsonServer(lambda c: Reply(body={"results": PEOPLE})) as srv,
              pytest.raises(SourceError, match=r"no employee records were returned.*\(data\)")):
            hris(srv.url).read()


class TestRecords:
    def test_bad_values_are_issues_naming_page_item_and_field(self) -> None:
        """Mapping problems hold the record, at `hris:page N item M`, naming the field."""
        people = [person(i) for i in range(5)]
        people[1] = {**people[1], "mobile": "1.38E+10"}
        people[3] = {**people[3], "joined": "3/5/2024", "kind": "Freelancer"}
        people[4] = {**people[4], "joined": "2024年3月5日", "kind": "Intern"}
        with JsonServer(lambda c: offset_pages(c, people)) as srv:
            conn = hris(srv.url, employees={"path": "/people", "records": "data",
                                            "pagination": {**OFFSET, "size": 2}},
                        mapping={"employees": {
                            "join_date": "joined",
                            "employee_type": {"from": "kind", "default": "regular",
                                              "map": {"full-time": "regular", "intern": "intern"}}}})
            data = conn.read()
        assert [str(i) for i in data.issues] == [
            "hris:page 1 item 2: employee 00001: mobile: '1.38E+10' looks like a number Excel "
            "turned into scientific notation; export the column as text (held back)",
            "hris:page 2 item 2: employee 00003: join_date: '3/5/2024' is ambiguous (day/month "
            "or month/day?); name the format, e.g. transforms: [{date: ['%d/%m/%Y']}] (held back)",
            "hris:page 2 item 2: employee 00003: employee_type: 'Freelancer' is not in the value "
            "map (known: 'full-time', 'intern') (held back)",
        ]
        assert data.held_employees == {"00001", "00003"}
        e4 = data.snapshot.employees["00004"]
        assert (e4.join_date, e4.employee_type) == (date(2024, 3, 5), EmployeeType.INTERN)
        assert data.employee_rows["00004"] == "hris:page 3 item 1"

    def test_duplicate_key_on_one_page_holds_both(self) -> None:
        """Two records with one key on the same page are both held, each naming the other."""
        people = [person(0), person(1), {**person(2), "id": "00001"}]
        with JsonServer(lambda c: Reply(body={"data": people})) as srv:
            data = hris(srv.url).read()
        assert [str(i) for i in data.issues] == [
            "hris:page 1 item 2: employee 00001: key: key '00001' is also at hris:page 1 item 3 "
            "(held back)",
            "hris:page 1 item 3: employee 00001: key: key '00001' is also at hris:page 1 item 2 "
            "(held back)",
        ]
        assert data.held_employees == {"00001"}

    def test_departments_endpoint_and_manager_ref(self) -> None:
        """Departments from their own endpoint; managers referenced by another id are resolved."""
        depts = [{"code": "D1", "title": "总部", "up": None, "head": "u0"},
                 {"code": "D2", "title": "研发", "up": "D1", "head": "u1"}]
        people = [{"uid": f"u{i}", "no": f"{i:04d}", "name": f"P{i}", "mobile": f"1390000000{i}",
                   "dept": "D2" if i else "D1", "boss": "u0" if i else None} for i in range(3)]

        def handle(call: Call) -> Reply:
            return Reply(body={"rows": depts if call.path == "/departments" else people})

        with JsonServer(handle) as srv:
            conn = hris(srv.url, manager_ref="uid",
                        employees={"path": "/people", "records": "rows"},
                        departments={"from": "endpoint", "path": "/departments", "records": "rows",
                                     "field": None},
                        mapping={"employees": {"key": "no", "department_keys": "dept",
                                               "email": None},
                                 "departments": {"key": "code", "name": "title",
                                                 "parent_key": "up", "leader_key": "head"}})
            data = conn.read()
        assert data.snapshot.employees["0002"].manager_key == "0000"
        assert data.snapshot.employees["0002"].department_keys == ("D2",)
        assert data.snapshot.departments["D2"].parent_key == "D1"
        assert validate(data).issues[0].reason.startswith("leader ")  # u1 is a raw id, not a key


class TestBambooHRPreset:
    def test_custom_report(self) -> None:
        """The bamboohr preset POSTs a custom report with Basic key:x and maps its fields."""
        rows = [
            {"id": "1", "employeeNumber": "0001", "firstName": "Ada", "lastName": "Lovelace",
             "displayName": "Ada Lovelace", "workEmail": "Ada.Lovelace@Example.COM",
             "mobilePhone": "+44 7700 900123", "division": "R&D", "department": "Platform",
             "jobTitle": "CTO", "supervisorEId": None, "status": "Active",
             "hireDate": "2020-02-03", "location": "London", "employmentHistoryStatus": "Full-Time",
             "gender": "Female"},
            {"id": "2", "employeeNumber": "0002", "firstName": "Bob", "lastName": "Li",
             "displayName": None, "workEmail": "bob@example.com", "mobilePhone": "13800138000",
             "division": None, "department": "Sales", "jobTitle": "Rep", "supervisorEId": "1",
             "status": "Inactive", "hireDate": "0000-00-00", "location": None,
             "employmentHistoryStatus": "Contractor", "gender": "Nonbinary"},
        ]

        def handle(call: Call) -> Reply:
            assert call.method == "POST"
            assert call.path == "/api/gateway.php/acme/v1/reports/custom"
            assert call.query == {"format": "JSON", "onlyCurrent": "false"}
            assert "supervisorEId" in call.body["fields"]
            if call.headers.get("authorization") != "Basic YXBpLWtleTp4":  # api-key:x
                return Reply(401, {})
            return Reply(body={"title": "orgsync", "fields": [], "employees": rows})

        with JsonServer(handle) as srv:
            conn = HrisConnector.from_config(
                {"preset": "bamboohr", "base_url": f"{srv.url}/api/gateway.php/acme/v1",
                 "auth": {"username": "api-key"}}, base_dir=Path("/tmp"), file="o.yaml")
            data = conn.read()
        assert data.issues == []
        ada, bob = data.snapshot.employees["1"], data.snapshot.employees["2"]
        assert (ada.name, ada.mobile, ada.join_date, ada.city, ada.department_keys) == (
            "Ada Lovelace", "+447700900123", date(2020, 2, 3), "London", ("R&D/Platform",))
        assert ada.email == "ada.lovelace@example.com"  # lower-cased, as every source's
        assert (bob.name, bob.status, bob.join_date, bob.manager_key, bob.employee_type) == (
            "Bob Li", Status.TERMINATED, None, "1", EmployeeType.CONTRACTOR)
        assert (ada.profile, bob.profile) == ({"gender": 2}, {"gender": 3})
        assert data.profile_fields == {"gender"}
        assert sorted(data.snapshot.departments) == ["R&D", "R&D/Platform", "Sales"]


class TestOptions:
    @pytest.mark.parametrize(("options", "key", "text"), [
        ({"preset": "workday"}, "source.preset", "unknown hris preset 'workday'"),
        ({"base_url": "ftp://x"}, "source.base_url", "is not an http"),
        ({"base_urll": "x"}, "source.base_url", "is required"),
        ({"timout": 3}, "source.timout", "did you mean 'timeout'"),
        ({"auth": {"type": "bearer"}}, "source.auth.token", "is required"),
        ({"employees": {"path": "/p", "pagination": {"type": "cursor"}}},
         "source.employees.pagination.next", "is required for cursor pagination"),
        ({"mapping": {"employees": {"emial": "mail"}}}, "source.mapping.employees.emial",
         "did you mean 'email'"),
        ({"mapping": {"employees": {"name": {"from": "x", "transforms": ["shout"]}}}},
         "source.mapping.employees.name", "unknown transform 'shout'"),
    ])
    def test_bad_options(self, options: dict[str, Any], key: str, text: str) -> None:
        """Each bad option is a ConfigError naming source.<key>."""
        base = {"base_url": "http://x", "employees": {"path": "/p"},
                "departments": {"from": "path", "field": "d"}, "mapping": {"employees": GENERIC}}
        merged = {**base, **options}
        if "base_urll" in options:
            del merged["base_url"]
            del merged["base_urll"]
        with pytest.raises(ConfigError, match=text) as err:
            HrisConnector.from_config(merged, base_dir=Path("/x"), file="o.yaml")
        assert err.value.key == key

    def test_token_file_and_registry(self, tmp_path: Path) -> None:
        """token_file is read (relative to the config); build_connector knows type: hris."""
        (tmp_path / "token").write_text("from-file\n")
        cfg = config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
                                "source": {"type": "hris", "preset": "scim", "base_url": "http://x",
                                           "auth": {"token_file": "token"}}}, base_dir=tmp_path)
        conn = build_connector(cfg.source)
        assert isinstance(conn, HrisConnector)
        assert conn.auth.token == "from-file"
        assert "from-file" not in repr(conn)


# --- credentials go to base_url's origin only ---------------------------------------------------

AUTHS: dict[str, dict[str, Any]] = {
    "basic": {"type": "basic", "username": "svc", "password": "basic-pw"},
    "bearer": {"type": "bearer", "token": TOKEN},
    "oauth2": {"type": "oauth2", "token_url": "/oauth/token", "client_id": "cid",
               "client_secret": "csecret"},
}


def authenticated(call: Call) -> bool:
    """The configured credentials arrived (any of the three kinds)."""
    return call.headers.get("authorization") in (
        "Basic c3ZjOmJhc2ljLXB3", f"Bearer {TOKEN}", "Bearer tok-1")


def first_page_pointing_at(next_url: str, via: str) -> Any:
    """A handler whose page 1 (100 people) names ``next_url`` as the next page."""
    def handle(call: Call) -> Reply:
        if call.path == "/oauth/token":
            return Reply(body={"access_token": "tok-1", "expires_in": 3600})
        if not authenticated(call):
            return Reply(401, {"error": "no credentials"})
        if via == "link":
            return Reply(body={"data": PEOPLE[:100]}, headers={"Link": f'<{next_url}>; rel="next"'})
        return Reply(body={"data": PEOPLE[:100], "next": next_url})

    return handle


PAGING = {"link": {"type": "link"}, "cursor": {"type": "cursor", "next": "next"}}


class TestCredentialsStayHome:
    @pytest.mark.parametrize("via", ["link", "cursor"])
    @pytest.mark.parametrize("auth", sorted(AUTHS))
    def test_next_page_on_another_host_is_refused(self, auth: str, via: str) -> None:
        """A next page on 127.0.0.2 fails the read; that host never sees a request."""
        with JsonServer(lambda c: Reply(body={"data": PEOPLE[100:]}), host="127.0.0.2") as other:
            other_url = f"{other.url}/collect?page=2"
            with JsonServer(first_page_pointing_at(other_url, via)) as home:
                conn = hris(home.url, auth=AUTHS[auth], employees={
                    "path": "/people", "records": "data", "pagination": PAGING[via]})
                with pytest.raises(SourceError) as err:
                    conn.read()
        assert str(err.value) == (
            f"hris /people page 2: refusing to send the credentials to {other.url}/collect?"
            f"page=***, outside base_url's origin {home.url}; the read is aborted, nothing was "
            "synced (if the API really moved there, change base_url)")
        assert other.calls == []  # not one request, so no Authorization header either
        assert [authenticated(c) for c in home.calls if c.path == "/people"] == [True]

    @pytest.mark.parametrize("auth", sorted(AUTHS))
    def test_https_to_http_downgrade_is_refused(self, auth: str, tmp_path: Path) -> None:
        """base_url is https; a next link to http on the same host is refused before any send."""
        plain = JsonServer(lambda c: Reply(body={"data": PEOPLE[100:]}))
        home = JsonServer(first_page_pointing_at(f"{plain.url}/people?page=2", "link"),
                          tls_dir=tmp_path)
        assert home.url.startswith("https://127.0.0.1:")
        with plain, home:
            conn = hris(home.url, auth=AUTHS[auth], tls={"ca_file": str(home.certificate)},
                        employees={"path": "/people", "records": "data",
                                   "pagination": PAGING["link"]})
            with pytest.raises(SourceError, match=r"page 2: refusing to send the "
                                                  r"credentials to http://127\.0\.0\.1"):
                conn.read()
        assert plain.calls == []
        assert [authenticated(c) for c in home.calls if c.path == "/people"] == [True]

    @pytest.mark.parametrize("via", ["link", "cursor"])
    def test_absolute_next_url_on_the_same_origin_is_followed(self, via: str) -> None:
        """An absolute next URL on base_url's own origin is followed, credentials and all."""
        def handle(call: Call) -> Reply:
            if not authenticated(call):
                return Reply(401, {})
            at = int(call.query.get("from", 0))
            nxt = f"{srv.url}/people?from={at + 100}" if at + 100 < len(PEOPLE) else None
            if via == "link":
                return Reply(body={"data": PEOPLE[at:at + 100]},
                             headers={"Link": f'<{nxt}>; rel="next"'} if nxt else {})
            return Reply(body={"data": PEOPLE[at:at + 100], "next": nxt})

        with JsonServer(handle) as srv:
            conn = hris(srv.url, auth=AUTHS["bearer"], employees={
                "path": "/people", "records": "data", "pagination": PAGING[via]})
            assert len(conn.read().snapshot.employees) == 250
        assert len(srv.calls) == 3

    def test_the_oauth2_token_endpoint_may_live_elsewhere(self) -> None:
        """token_url is the one configured URL allowed on another host (it gets no bearer)."""
        def token(call: Call) -> Reply:
            ok = call.form.get("client_secret") == "csecret"
            return Reply(body={"access_token": "tok-1"}) if ok else Reply(401, {})

        with (JsonServer(token, host="127.0.0.2") as issuer,
              JsonServer(lambda c: Reply(body={"data": PEOPLE}) if authenticated(c)
                         else Reply(401, {})) as home):
            conn = hris(home.url, auth={**AUTHS["oauth2"], "token_url": f"{issuer.url}/token"})
            assert len(conn.read().snapshot.employees) == 250
        assert [(c.method, c.path, c.headers.get("authorization")) for c in issuer.calls] == [
            ("POST", "/token", None)]
