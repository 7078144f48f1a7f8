"""Onboarding messages and run reports against the sandbox, on a controllable clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lark_oapi as lark
import pytest
from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

from orgsync import notify
from orgsync.config import Config, config_from_dict
from orgsync.errors import ConfigError, PlanHeld
from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger, notification_uuid
from orgsync.model import Employee, Snapshot
from orgsync.runner import RunOutcome, apply_plan, feishu_settings, make_plan, run_once
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from orgsync.templates import BUILTIN_VARIABLES, TemplateError, parse_template

SCALE = 10.0
ORG = generate_org(employees=30, departments=6, levels=3)
T0 = datetime.now(UTC)
MANAGERS = sorted({e.manager_key for e in ORG.employees.values() if e.manager_key})


def config(sb: SandboxServer, src: Path, ledger: Path, **sections: Any) -> Config:
    return config_from_dict({
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": sb.config.app_secret, "rate_scale": SCALE},
        "source": {"type": "csv", "departments": str(src / "departments.csv"),
                   "employees": str(src / "employees.csv")},
        "ledger": {"url": f"sqlite:///{ledger}"},
        **sections,
    }, file="<test>", base_dir=src)


def run(cfg: Config, ledger: Ledger, at: datetime) -> RunOutcome:
    return asyncio.run(run_once(cfg, ledger, apply=True, now=at))


def make_chat(cfg: Config, name: str) -> str:
    async def go() -> str:
        async with FeishuClient(feishu_settings(cfg)) as c:
            return str((await c.create_chat({"name": name}))["chat_id"])
    return asyncio.run(go())


def joiner(n: int, manager: str, start: datetime) -> Employee:
    m = ORG.employees[manager]
    return Employee(key=f"N{n:04d}", name=f"新人{n}", department_keys=(m.department_keys[0],),
                    en_name=f"Newbie {n}", email=f"newbie{n}@example.com",
                    mobile=f"+861380000{n:04d}", manager_key=manager, job_title="工程师",
                    join_date=start.date())


def with_people(*people: Employee) -> Snapshot:
    return Snapshot(dict(ORG.departments), {**ORG.employees, **{e.key: e for e in people}})


def messages(sb: SandboxServer) -> list[dict[str, Any]]:
    return list(sb.tenant.messages)


def to_user(sb: SandboxServer, key: str) -> list[dict[str, Any]]:
    user = sb.tenant.find_user(key, "user_id")
    assert user is not None
    return [m for m in messages(sb) if m["receiver"] == user.open_id]


def in_chat(sb: SandboxServer, chat: str) -> list[str]:
    return [json.loads(m["content"])["text"] for m in messages(sb) if m["chat_id"] == chat]


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


@pytest.fixture(name="setup")
def _setup(sb: SandboxServer, tmp_path: Path) -> tuple[Config, Ledger, str]:
    """The org imported (no welcomes: nobody in it is new); returns config, ledger, admin chat."""
    write_csv(ORG, tmp_path / "s")
    probe = config(sb, tmp_path / "s", tmp_path / "l.db")
    admin = make_chat(probe, "orgsync-admins")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db",
                 notify={"admin_chat_id": admin, "retry_days": 7,
                         "links": {"guide": "https://wiki.example.com/onboarding"}})
    ledger = Ledger(cfg.ledger.url)
    out = run(cfg, ledger, T0)
    assert out.exit_code == 0
    assert out.notified is not None
    assert out.notified.sent == []
    return cfg, ledger, admin


def test_week_of_joiners_sends_one_welcome_and_one_note_each(sb: SandboxServer, tmp_path: Path,
                                                             setup: tuple[Config, Ledger, str]
                                                             ) -> None:
    """Joiners on day 0 and 3: one welcome each, one note per manager; re-runs send nothing."""
    cfg, ledger, admin = setup
    reports = in_chat(sb, admin)
    assert len(reports) == 1
    assert "user.create: 30" in reports[0]
    wave1 = [joiner(1, MANAGERS[0], T0), joiner(2, MANAGERS[1], T0)]
    wave2 = [joiner(3, MANAGERS[2], T0 + timedelta(days=3))]
    write_csv(with_people(*wave1), tmp_path / "s")
    out = run(cfg, ledger, T0)
    assert out.exit_code == 0
    assert out.notified is not None
    assert out.notified.sent == sorted(f"{k}:{e.key}" for e in wave1
                                       for k in ("manager_note", "welcome"))
    for day in (0, 1, 2):
        assert run(cfg, ledger, T0 + timedelta(days=day)).plan.empty
    write_csv(with_people(*wave1, *wave2), tmp_path / "s")
    run(cfg, ledger, T0 + timedelta(days=3))
    for day in (3, 4, 6):
        run(cfg, ledger, T0 + timedelta(days=day))
    for e in (*wave1, *wave2):
        welcome = to_user(sb, e.key)
        assert len(welcome) == 1
        text = json.loads(welcome[0]["content"])["text"]
        manager = ORG.employees[e.manager_key or ""]
        dept = ORG.departments[e.department_keys[0]].name
        assert f"{e.name}" in text
        assert manager.name in text
        assert dept in text
        assert e.join_date is not None
        assert e.join_date.isoformat() in text
        assert welcome[0]["uuid"] == notification_uuid(f"welcome:{e.key}")
    for m in MANAGERS[:3]:
        assert len(to_user(sb, m)) == 1
    assert len(messages(sb)) == 3 * 2 + 3  # welcomes + notes + 3 run reports (import, 2 waves)
    assert len(in_chat(sb, admin)) == 3


def test_crash_between_create_and_message_still_sends_exactly_once(
        sb: SandboxServer, tmp_path: Path, setup: tuple[Config, Ledger, str]) -> None:
    """Applied but killed before messaging: the next run sends the owed welcome, once."""
    cfg, ledger, _ = setup
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    planned = asyncio.run(make_plan(cfg, ledger, now=T0))
    asyncio.run(apply_plan(cfg, ledger, planned.plan, run_id="crashed", now=T0))
    assert sb.tenant.find_user(e.key, "user_id") is not None
    assert to_user(sb, e.key) == []
    assert {r.event: r.status for r in ledger.notifications()} == {
        f"welcome:{e.key}": "pending", f"manager_note:{e.key}": "pending",
        **{r.event: "sent" for r in ledger.notifications(kinds=("report",))}}
    out = run(cfg, ledger, T0)
    assert out.plan.empty
    assert out.exit_code == 0
    run(cfg, ledger, T0 + timedelta(days=1))
    assert len(to_user(sb, e.key)) == 1
    assert len(to_user(sb, MANAGERS[0])) == 1


class _DiesAfterSending:
    """The real client, but the process "dies" right after Feishu accepted the message."""

    def __init__(self, client: FeishuClient) -> None:
        self.client = client

    async def send_message(self, *, receive_id_type: str, receive_id: str, msg_type: str,
                           content: str | Mapping[str, Any],
                           uuid: str | None = None) -> dict[str, Any]:
        await self.client.send_message(receive_id_type=receive_id_type, receive_id=receive_id,
                                       msg_type=msg_type, content=content, uuid=uuid)
        raise RuntimeError("killed")


def test_crash_after_send_before_ledger_is_deduplicated(sb: SandboxServer, tmp_path: Path,
                                                        setup: tuple[Config, Ledger, str]) -> None:
    """Sent but never recorded: the retry carries the same uuid and Feishu keeps one message."""
    cfg, ledger, _ = setup
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    planned = asyncio.run(make_plan(cfg, ledger, now=T0))
    asyncio.run(apply_plan(cfg, ledger, planned.plan, run_id="crashed", now=T0))

    async def die() -> None:
        async with FeishuClient(feishu_settings(cfg)) as c:
            await notify.deliver(cfg.notify, ledger, _DiesAfterSending(c), T0)
    with pytest.raises(RuntimeError, match="killed"):
        asyncio.run(die())
    assert len(to_user(sb, e.key)) == 1
    run(cfg, ledger, T0)
    assert len(to_user(sb, e.key)) == 1
    assert len(to_user(sb, MANAGERS[0])) == 1
    assert {r.status for r in ledger.notifications(kinds=notify.PEOPLE_KINDS)} == {"sent"}


def _created_unreachable(sb: SandboxServer, cfg: Config, ledger: Ledger, e: Employee) -> None:
    planned = asyncio.run(make_plan(cfg, ledger, now=T0))
    asyncio.run(apply_plan(cfg, ledger, planned.plan, run_id="r", now=T0))
    sb.tenant.set_reachable(e.key, False)


def test_unreachable_hire_gets_the_welcome_on_a_later_run(sb: SandboxServer, tmp_path: Path,
                                                          setup: tuple[Config, Ledger, str]
                                                          ) -> None:
    """230013 keeps the welcome pending (exit 0, note still sent); day 2 it goes out."""
    cfg, ledger, _ = setup
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    _created_unreachable(sb, cfg, ledger, e)
    out = run(cfg, ledger, T0)
    assert out.exit_code == 0
    assert out.notified is not None
    assert out.notified.pending == [f"welcome:{e.key}"]
    assert out.notified.sent == [f"manager_note:{e.key}"]
    row = next(r for r in ledger.notifications() if r.event == f"welcome:{e.key}")
    assert (row.status, row.code, row.attempts) == ("pending", 230013, 1)
    assert run(cfg, ledger, T0 + timedelta(days=1)).exit_code == 0
    sb.tenant.set_reachable(e.key, True)
    out = run(cfg, ledger, T0 + timedelta(days=2))
    assert out.notified is not None
    assert out.notified.sent == [f"welcome:{e.key}"]
    assert len(to_user(sb, e.key)) == 1


def test_unreachable_welcome_expires_and_is_reported(sb: SandboxServer, tmp_path: Path,
                                                     setup: tuple[Config, Ledger, str]) -> None:
    """Still unreachable after retry_days: expired, named in the admin report, never retried."""
    cfg, ledger, admin = setup
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    _created_unreachable(sb, cfg, ledger, e)
    run(cfg, ledger, T0 + timedelta(days=7))
    out = run(cfg, ledger, T0 + timedelta(days=8))
    assert out.exit_code == 0
    assert out.notified is not None
    assert out.notified.expired == [f"welcome:{e.key}"]
    assert f"expired welcome:{e.key}" in in_chat(sb, admin)[-1]
    sb.tenant.set_reachable(e.key, True)
    out = run(cfg, ledger, T0 + timedelta(days=9))
    assert out.notified is not None
    assert out.notified.sent == []
    assert to_user(sb, e.key) == []


def test_prehire_is_welcomed_on_the_start_date(sb: SandboxServer, tmp_path: Path,
                                               setup: tuple[Config, Ledger, str]) -> None:
    """Created 3 days early (prehire_days), welcomed on day 3, not before."""
    cfg, ledger, _ = setup
    e = joiner(1, MANAGERS[0], T0 + timedelta(days=3))
    write_csv(with_people(e), tmp_path / "s")
    run(cfg, ledger, T0)
    assert sb.tenant.find_user(e.key, "user_id") is not None
    run(cfg, ledger, T0 + timedelta(days=2))
    assert to_user(sb, e.key) == []
    run(cfg, ledger, T0 + timedelta(days=3))
    run(cfg, ledger, T0 + timedelta(days=4))
    assert len(to_user(sb, e.key)) == 1


CARD = {
    "msg_type": "interactive",
    "zh": {"config": {"wide_screen_mode": True},
           "header": {"title": {"tag": "plain_text", "content": "欢迎 {name}"},
                      "template": "blue"},
           "elements": [
               {"tag": "div", "text": {"tag": "lark_md",
                                       "content": "部门：{department}\n上级：{manager}"}},
               {"tag": "action", "actions": [{
                   "tag": "button", "text": {"tag": "plain_text", "content": "入职指南"},
                   "url": "{guide}", "type": "primary"}]}]},
}


def test_card_welcome_is_accepted_by_the_sdk_message_model(sb: SandboxServer, tmp_path: Path,
                                                           setup: tuple[Config, Ledger, str]
                                                           ) -> None:
    """An interactive welcome renders variables and round-trips through lark-oapi's model."""
    cfg, ledger, admin = setup
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db",
                 notify={"admin_chat_id": admin, "language": "zh",
                         "links": {"guide": "https://wiki.example.com/onboarding"},
                         "templates": {"welcome": CARD}})
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    run(cfg, ledger, T0)
    [sent] = to_user(sb, e.key)
    assert sent["msg_type"] == "interactive"
    body = CreateMessageRequestBody.builder().receive_id(sent["receive_id"]) \
        .msg_type(sent["msg_type"]).content(sent["content"]).uuid(sent["uuid"]).build()
    request = CreateMessageRequest.builder().receive_id_type("open_id").request_body(body).build()
    assert request.request_body is not None
    wire = json.loads(lark.JSON.marshal(request.request_body))
    assert wire["msg_type"] == "interactive"
    card = json.loads(wire["content"])
    assert card["header"]["title"]["content"] == f"欢迎 {e.name}"
    assert card["elements"][1]["actions"][0]["url"] == "https://wiki.example.com/onboarding"
    assert ORG.employees[MANAGERS[0]].name in card["elements"][0]["text"]["content"]


def test_held_plan_alerts_the_admin_chat_once(sb: SandboxServer, tmp_path: Path,
                                              setup: tuple[Config, Ledger, str]) -> None:
    """A held plan sends one alert with its id and reason; holding it again sends none."""
    cfg, ledger, admin = setup
    cfg = replace(cfg, safety=replace(cfg.safety, max_user_removals=1))
    bosses = set(MANAGERS) | {d.leader_key for d in ORG.departments.values()}
    gone = sorted(k for k in ORG.employees if k not in bosses)[:2]
    write_csv(Snapshot(dict(ORG.departments),
                       {k: v for k, v in ORG.employees.items() if k not in gone}), tmp_path / "s")
    for _ in range(2):
        with pytest.raises(PlanHeld) as held:
            run(cfg, ledger, T0)
    alerts = [t for t in in_chat(sb, admin) if "HELD" in t]
    assert len(alerts) == 1
    assert held.value.plan_id in alerts[0]
    assert held.value.reasons[0] in alerts[0]


def test_unknown_variable_fails_the_config_check(tmp_path: Path) -> None:
    """A template naming an unknown variable is a ConfigError naming the key, at load."""
    with pytest.raises(ConfigError) as err:
        config_from_dict({
            "version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
            "source": {"type": "csv"},
            "notify": {"templates": {"welcome": {"msg_type": "text", "zh": "你好 {nmae}"}}},
        }, file="c.yaml", base_dir=tmp_path)
    assert err.value.key == "notify.templates.welcome.zh"
    assert "unknown variable '{nmae}'" in str(err.value)


def test_post_template_renders_both_languages() -> None:
    """A post template gives zh_cn and en_us bodies with variables filled; zh-only drops en."""
    t = parse_template({
        "msg_type": "post",
        "zh": {"title": "欢迎 {name}", "content": [[{"tag": "text", "text": "{department}"}]]},
        "en": {"title": "Welcome {en_name}", "content": [[{"tag": "text", "text": "hi"}]]},
    }, BUILTIN_VARIABLES)
    both = t.render({"name": "张三", "en_name": "San", "department": "研发"}, "both")
    assert both == {"zh_cn": {"title": "欢迎 张三", "content": [[{"tag": "text", "text": "研发"}]]},
                    "en_us": {"title": "Welcome San", "content": [[{"tag": "text", "text": "hi"}]]}}
    assert set(t.render({}, "zh")) == {"zh_cn"}


@pytest.mark.parametrize(("raw", "path"), [
    ({"msg_type": "sms", "zh": "x"}, "msg_type"),
    ({"msg_type": "text"}, "zh"),
    ({"msg_type": "text", "zh": "{name.first}"}, "zh"),
    ({"msg_type": "post", "en": {"title": "t"}}, "en"),
    ({"msg_type": "interactive", "zh": {"header": {}, "elements": [{"text": "{oops}"}]}},
     "zh.elements[0].text"),
])
def test_bad_templates_name_the_place(raw: dict[str, Any], path: str) -> None:
    """Shape and variable errors point at the dotted place inside the template."""
    with pytest.raises(TemplateError) as err:
        parse_template(raw, BUILTIN_VARIABLES)
    assert err.value.path == path
