"""The official SDK (lark-oapi, sync calls) against the sandbox: wire format and models parse.

The SDK caches tenant tokens per app_id in a process-wide cache, so each test configures the
sandbox with its own app_id.
"""

from __future__ import annotations

import json
from itertools import count

import lark_oapi as lark
import pytest
from lark_oapi.api.contact.v3 import (
    ChildrenDepartmentRequest,
    CreateDepartmentRequest,
    CreateJobFamilyRequest,
    CreateJobLevelRequest,
    CreateUserRequest,
    Department,
    DepartmentLeader,
    FindByDepartmentUserRequest,
    GetDepartmentRequest,
    GetUserRequest,
    JobFamily,
    JobLevel,
    PatchUserRequest,
    User,
    UserCustomAttr,
    UserCustomAttrValue,
    UserOrder,
)
from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

from orgsync.sandbox import SandboxServer

_apps = count(1)


@pytest.fixture
def client(sandbox: SandboxServer) -> lark.Client:
    """An SDK client on the sandbox, with an app_id no other test uses."""
    app_id = f"cli_sdk_{next(_apps)}_{id(sandbox):x}"
    sandbox.configure(app_id=app_id)
    return (lark.Client.builder().app_id(app_id).app_secret(sandbox.config.app_secret)
            .domain(sandbox.base_url).timeout(10).log_level(lark.LogLevel.ERROR).build())


def make_department(client: lark.Client, dept_id: str, parent: str = "0") -> Department:
    req = (CreateDepartmentRequest.builder().department_id_type("department_id")
           .user_id_type("user_id").client_token(f"ct-{dept_id}")
           .request_body(Department.builder().name(dept_id.upper()).department_id(dept_id)
                         .parent_department_id(parent).build()).build())
    resp = client.contact.v3.department.create(req)
    assert resp.success(), (resp.code, resp.msg)
    return resp.data.department


def make_user(client: lark.Client, user_id: str, mobile: str, dept: str = "eng") -> lark.BaseResponse:
    req = (CreateUserRequest.builder().user_id_type("user_id").department_id_type("department_id")
           .request_body(User.builder().user_id(user_id).name(f"User {user_id}").mobile(mobile)
                         .department_ids([dept]).employee_type(1).build()).build())
    return client.contact.v3.user.create(req)


def test_departments_create_get_children(client: lark.Client) -> None:
    """Create, get and list departments through the SDK; its models parse our responses."""
    created = make_department(client, "eng")
    assert created.department_id == "eng"
    assert created.open_department_id.startswith("od-")
    assert created.status.is_deleted is False
    make_department(client, "backend", parent="eng")

    got = client.contact.v3.department.get(
        GetDepartmentRequest.builder().department_id("backend")
        .department_id_type("department_id").build())
    assert got.success()
    assert (got.data.department.name, got.data.department.parent_department_id) == \
        ("BACKEND", "eng")
    assert got.get_log_id()  # X-Tt-Logid arrives with the casing the SDK looks up

    children = client.contact.v3.department.children(
        ChildrenDepartmentRequest.builder().department_id("0")
        .department_id_type("department_id").fetch_child(True).page_size(50).build())
    assert children.success()
    assert [d.department_id for d in children.data.items] == ["eng", "backend"]
    assert children.data.items[0].name == "ENG"
    assert children.data.has_more is False


def test_snake_case_leaders_from_the_sdk(client: lark.Client) -> None:
    """The SDK sends leaders as leader_type/leader_id; the sandbox accepts them."""
    make_department(client, "eng")
    assert make_user(client, "boss", "13000000001").success()
    req = (CreateDepartmentRequest.builder().department_id_type("department_id")
           .user_id_type("user_id")
           .request_body(Department.builder().name("Led").department_id("led")
                         .parent_department_id("0")
                         .leaders([DepartmentLeader.builder().leader_type(1).leader_id("boss")
                                   .build()]).build()).build())
    resp = client.contact.v3.department.create(req)
    assert resp.success(), (resp.code, resp.msg)
    assert resp.data.department.leader_user_id == "boss"


def test_users_create_get_and_page(client: lark.Client) -> None:
    """Create users, get one, and page find_by_department through the SDK."""
    make_department(client, "eng")
    for i in range(7):
        resp = make_user(client, f"u{i}", f"1300000000{i}")
        assert resp.success(), (resp.code, resp.msg)
    assert resp.data.user.user_id == "u6"
    assert resp.data.user.open_id.startswith("ou_")

    got = client.contact.v3.user.get(GetUserRequest.builder().user_id("u3")
                                     .user_id_type("user_id")
                                     .department_id_type("department_id").build())
    assert got.success()
    assert (got.data.user.name, got.data.user.department_ids) == ("User u3", ["eng"])
    assert got.data.user.status.is_resigned is False

    seen: list[str] = []
    token = None
    while True:
        builder = (FindByDepartmentUserRequest.builder().department_id("eng")
                   .department_id_type("department_id").user_id_type("user_id").page_size(3))
        if token:
            builder = builder.page_token(token)
        page = client.contact.v3.user.find_by_department(builder.build())
        assert page.success()
        seen += [u.user_id for u in page.data.items]
        if not page.data.has_more:
            break
        token = page.data.page_token
    assert seen == [f"u{i}" for i in range(7)]


def test_profile_fields_round_trip_through_the_sdk_models(client: lark.Client,
                                                         sandbox: SandboxServer) -> None:
    """Every profile field orgsync writes (feishu-api-more.md §1.6, §1.13, §5, §6): created
    with the SDK's models, read back through them field by field."""
    sandbox.configure(custom_employee_types=["6"], custom_attrs=[
        {"id": "C-1", "type": "TEXT", "i18n_name": [{"locale": "zh_cn", "value": "工位电话"}]}])
    make_department(client, "eng")
    assert make_user(client, "boss", "13000000001").success()
    level = client.contact.v3.job_level.create(CreateJobLevelRequest.builder().request_body(
        JobLevel.builder().name("P7").order(7).status(True).build()).build())
    family = client.contact.v3.job_family.create(CreateJobFamilyRequest.builder().request_body(
        JobFamily.builder().name("研发").status(True).build()).build())
    assert level.success(), (level.code, level.msg)
    assert family.success(), (family.code, family.msg)
    level_id, family_id = level.data.job_level.job_level_id, family.data.job_family.job_family_id
    attr = UserCustomAttr.builder().type("TEXT").id("C-1").value(
        UserCustomAttrValue.builder().text("8012").build()).build()
    req = (CreateUserRequest.builder().user_id_type("user_id").department_id_type("department_id")
           .request_body(User.builder().user_id("u").name("U").mobile("13000000002")
                         .department_ids(["eng"]).employee_type(6).work_station("A-1-01")
                         .gender(2).job_level_id(level_id).job_family_id(family_id)
                         .dotted_line_leader_user_ids(["boss"]).custom_attrs([attr])
                         .orders([UserOrder.builder().department_id("eng").user_order(100)
                                  .department_order(1).is_primary_dept(True).build()])
                         .build()).build())
    assert (created := client.contact.v3.user.create(req)).success(), (created.code, created.msg)
    got = client.contact.v3.user.get(GetUserRequest.builder().user_id("u").user_id_type("user_id")
                                     .department_id_type("department_id").build())
    assert got.success(), (got.code, got.msg)
    user = got.data.user
    assert (user.employee_type, user.work_station, user.gender) == (6, "A-1-01", 2)
    assert (user.job_level_id, user.job_family_id) == (level_id, family_id)
    assert user.dotted_line_leader_user_ids == ["boss"]
    assert [(a.id, a.type, a.value.text) for a in user.custom_attrs] == [("C-1", "TEXT", "8012")]
    assert [(o.department_id, o.user_order) for o in user.orders] == [("eng", 100)]


def test_duplicate_mobile_surfaces_as_code(client: lark.Client) -> None:
    """A rejected create reaches the SDK as resp.code (41001), not an exception."""
    make_department(client, "eng")
    assert make_user(client, "a", "13000000001").success()
    resp = make_user(client, "b", "+8613000000001")
    assert not resp.success()
    assert resp.code == 41001
    assert resp.raw.status_code == 400


def test_patch_user_via_sdk(client: lark.Client) -> None:
    """PATCH with the SDK's body serialization (None fields dropped) changes only name."""
    make_department(client, "eng")
    make_user(client, "a", "13000000001")
    resp = client.contact.v3.user.patch(
        PatchUserRequest.builder().user_id("a").user_id_type("user_id")
        .department_id_type("department_id")
        .request_body(User.builder().name("Renamed").build()).build())
    assert resp.success(), (resp.code, resp.msg)
    assert (resp.data.user.name, resp.data.user.mobile) == ("Renamed", "+8613000000001")


def test_send_message_via_sdk(sandbox: SandboxServer, client: lark.Client) -> None:
    """im.v1.message.create: content is a JSON string; the reply parses into the model."""
    make_department(client, "eng")
    make_user(client, "a", "13000000001")
    req = (CreateMessageRequest.builder().receive_id_type("user_id")
           .request_body(CreateMessageRequestBody.builder().receive_id("a").msg_type("text")
                         .content(json.dumps({"text": "welcome"})).uuid("welcome-a").build())
           .build())
    resp = client.im.v1.message.create(req)
    assert resp.success(), (resp.code, resp.msg)
    assert resp.data.message_id.startswith("om_")
    assert resp.data.body.content == json.dumps({"text": "welcome"})
    again = client.im.v1.message.create(req)
    assert again.data.message_id == resp.data.message_id
    assert len(sandbox.tenant.messages) == 1


def test_timeoff_events_create_and_delete(client: lark.Client) -> None:
    """The SDK's calendar time-off calls reach the sandbox's routes; its model parses ours."""
    from lark_oapi.api.calendar.v4 import (
        CreateTimeoffEventRequest,
        DeleteTimeoffEventRequest,
        TimeoffEvent,
    )

    make_department(client, "eng")
    assert make_user(client, "u_off", "+8613700000001").success()
    req = (CreateTimeoffEventRequest.builder().user_id_type("user_id")
           .request_body(TimeoffEvent.builder().user_id("u_off").timezone("Asia/Shanghai")
                         .start_time("2026-12-24").end_time("2026-12-24").title("年假")
                         .build()).build())
    created = client.calendar.v4.timeoff_event.create(req)
    assert created.success(), (created.code, created.msg)
    event = created.data
    assert (event.user_id, event.start_time, event.title) == ("u_off", "2026-12-24", "年假")
    deleted = client.calendar.v4.timeoff_event.delete(
        DeleteTimeoffEventRequest.builder().timeoff_event_id(event.timeoff_event_id).build())
    assert deleted.success(), (deleted.code, deleted.msg)
