"""User groups through the Feishu client against the sandbox over a real socket
(feishu-api-more.md §4): create/patch/delete, batched members, the documented codes and limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import lark_oapi as lark
import pytest
from lark_oapi.api.contact.v3 import (
    GetGroupRequest,
    SimplelistGroupMemberRequest,
    SimplelistGroupRequest,
)

from orgsync.errors import FeishuError
from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.sandbox import SandboxServer

T = TypeVar("T")


def _run(sandbox: SandboxServer, call: Callable[[FeishuClient], Awaitable[T]]) -> T:
    settings = FeishuSettings(app_id=sandbox.config.app_id, app_secret=sandbox.config.app_secret,
                              base_url=sandbox.base_url)

    async def main() -> T:
        async with FeishuClient(settings) as client:
            return await call(client)

    return asyncio.run(main())


def _people(sandbox: SandboxServer, count: int) -> list[str]:
    users = [{"user_id": f"E{n}", "name": f"Person {n}", "mobile": f"+86138{n:08d}"}
             for n in range(count)]
    sandbox.load({"departments": [], "users": users})
    return [u["user_id"] for u in users]


def _code(sandbox: SandboxServer, call: Callable[[FeishuClient], Awaitable[Any]]) -> int:
    with pytest.raises(FeishuError) as caught:
        _run(sandbox, call)
    return caught.value.code


def test_group_round_trip_with_batched_members(sandbox: SandboxServer) -> None:
    people = _people(sandbox, 130)

    async def main(c: FeishuClient) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
        gid = await c.create_group({"name": "北京研发", "group_id": "bjdev"})
        assert await c.add_group_members(gid, people[:100]) == {}
        # a replay of the same batch: 42005 in the results counts as added
        assert await c.add_group_members(gid, people[:100]) == {}
        assert await c.add_group_members(gid, people[100:]) == {}
        await c.remove_group_members(gid, people[:10])
        await c.patch_group(gid, {"name": "北京研发中心"})
        members = [m["member_id"] async for m in c.iter_group_members(gid)]
        return await c.get_group(gid), members, [g async for g in c.iter_groups()]

    group, members, listed = _run(sandbox, main)
    assert (group["name"], group["member_user_count"]) == ("北京研发中心", 120)
    assert members == people[10:]
    assert [(g["group_id"], g["name"]) for g in listed] == [("bjdev", "北京研发中心")]
    batch = [r for r in sandbox.requests() if r["path"].endswith("/member/batch_add")]
    assert len(batch) == 3


def test_group_codes(sandbox: SandboxServer) -> None:
    people = _people(sandbox, 1)
    _run(sandbox, lambda c: c.create_group({"name": "A", "group_id": "ga"}))
    assert _code(sandbox, lambda c: c.create_group({"name": "A", "group_id": "gb"})) == 47009
    assert _code(sandbox, lambda c: c.create_group({"name": "B", "group_id": "ga"})) == 47005
    assert _code(sandbox, lambda c: c.create_group({"name": "B", "group_id": "g-b"})) == 42002
    assert _code(sandbox, lambda c: c.create_group({"name": " "})) == 42001
    assert _code(sandbox, lambda c: c.create_group({"name": "x" * 101})) == 42013
    assert _code(sandbox, lambda c: c.create_group({"name": "B", "type": 2})) == 42003
    _run(sandbox, lambda c: c.add_group_members("ga", people))
    assert _code(sandbox, lambda c: c.delete_group("ga")) == 42017
    assert _code(sandbox, lambda c: c.get_group("nope")) == 42002

    async def empty_then_delete(c: FeishuClient) -> None:
        await c.remove_group_members("ga", people)
        await c.delete_group("ga")

    _run(sandbox, empty_then_delete)
    assert sandbox.tenant.state()["groups"] == []


def test_five_hundred_groups_per_tenant(sandbox: SandboxServer) -> None:
    sandbox.load({"groups": [{"group_id": f"g{n}", "name": f"G{n}"} for n in range(500)]})
    assert _code(sandbox, lambda c: c.create_group({"name": "one more"})) == 42016


def test_creating_a_group_needs_all_members_scope(sandbox: SandboxServer) -> None:
    sandbox.load({"departments": [{"department_id": "D1", "name": "D1"}]})
    sandbox.configure(contact_scope=["D1"])
    assert _code(sandbox, lambda c: c.create_group({"name": "A"})) == 42010


def test_more_than_a_hundred_members_per_call_is_refused_before_sending(
        sandbox: SandboxServer) -> None:
    people = _people(sandbox, 101)
    with pytest.raises(ValueError, match="1 to 100"):
        _run(sandbox, lambda c: c.add_group_members("ga", people))


def test_the_official_sdk_reads_groups_back(sandbox: SandboxServer) -> None:
    people = _people(sandbox, 3)

    async def make(c: FeishuClient) -> None:
        await c.create_group({"name": "Interns", "group_id": "interns", "description": "d"})
        await c.add_group_members("interns", people)

    _run(sandbox, make)
    sandbox.configure(app_id="cli_sdk_groups")
    sdk = (lark.Client.builder().app_id("cli_sdk_groups").app_secret(sandbox.config.app_secret)
           .domain(sandbox.base_url).timeout(10).log_level(lark.LogLevel.ERROR).build())
    got = sdk.contact.v3.group.get(GetGroupRequest.builder().group_id("interns").build())
    assert got.success(), (got.code, got.msg)
    assert (got.data.group.name, got.data.group.member_user_count) == ("Interns", 3)
    listed = sdk.contact.v3.group_member.simplelist(
        SimplelistGroupMemberRequest.builder().group_id("interns").member_id_type("user_id")
        .member_type("user").page_size(100).build())
    assert listed.success(), (listed.code, listed.msg)
    assert [m.member_id for m in listed.data.memberlist] == people
    groups = sdk.contact.v3.group.simplelist(SimplelistGroupRequest.builder().build())
    assert [g.id for g in groups.data.grouplist] == ["interns"]
