"""Onboarding messages and run reports against the sandbox, on a controllable clock."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lark_oapi as lark
import pytest
from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody
from typer.testing import CliRunner

from orgsync import notify
from orgsync.cli import app as cli_app
from orgsync.config import Config, config_from_dict
from orgsync.errors import ConfigError, PlanHeld, SourceError
from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger, event_kind_target, notification_uuid
from orgsync.model import Department, Employee, Snapshot
from orgsync.plan import OpKind
from orgsync.render import render_markdown
from orgsync.runner import (
    apply_plan,
    make_plan,
    send_alert,
)
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from orgsync.templates import BUILTIN_VARIABLES, TemplateError, parse_template
from tests.sandbox_run import SCALE, config, run, with_client
from tests.torture.harness import config_dict

ROOT = Path(__file__).resolve().parents[1]

ORG = generate_org(employees=30, departments=6, levels=3)
T0 = datetime.now(UTC)
MANAGERS = sorted({e.manager_key for e in ORG.employees.values() if e.manager_key})


def make_chat(cfg: Config, name: str) -> str:
    async def go() -> str:
        async with FeishuClient(cfg.feishu) as c:
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
    planned = with_client(cfg, lambda c: make_plan(cfg, ledger, c, now=T0))
    with_client(cfg, lambda c: apply_plan(cfg, ledger, c, planned.plan, run_id="crashed", now=T0))
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
    planned = with_client(cfg, lambda c: make_plan(cfg, ledger, c, now=T0))
    with_client(cfg, lambda c: apply_plan(cfg, ledger, c, planned.plan, run_id="crashed", now=T0))

    async def die() -> None:
        async with FeishuClient(cfg.feishu) as c:
            await notify.deliver(cfg.notify, ledger, _DiesAfterSending(c), T0)
    with pytest.raises(RuntimeError, match="killed"):
        asyncio.run(die())
    assert len(to_user(sb, e.key)) == 1
    run(cfg, ledger, T0)
    assert len(to_user(sb, e.key)) == 1
    assert len(to_user(sb, MANAGERS[0])) == 1
    assert {r.status for r in ledger.notifications(kinds=notify.PEOPLE_KINDS)} == {"sent"}


def _killed_between_send_and_record(sb: SandboxServer, tmp_path: Path, cfg: Config,
                                    ledger: Ledger, admin: str) -> Employee:
    """A joiner applied; then an ``orgsync apply`` process sends the welcome and the note —
    the sandbox stores them and never answers — and is SIGKILLed before it hears back."""
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    planned = with_client(cfg, lambda c: make_plan(cfg, ledger, c, now=T0))
    with_client(cfg, lambda c: apply_plan(cfg, ledger, c, planned.plan, run_id="r", now=T0))
    doc = config_dict(sb, tmp_path / "s", tmp_path / "l.db")
    doc["feishu"]["app_secret"] = "${NOTIFY_TEST_SECRET}"
    doc["notify"] = {"admin_chat_id": admin, "retry_days": 7}
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps(doc), encoding="utf-8")
    before = len(messages(sb))  # the setup's run report
    # Feishu stores each message, then hangs (5 s, shorter than the client's 10 s timeout)
    sb.configure(fault_timeout=1.0, fault_after_apply=1.0, hang_seconds=5)
    proc = subprocess.Popen([sys.executable, "-m", "orgsync.cli", "apply", "--yes", "-c",
                             str(conf)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, "NOTIFY_TEST_SECRET": sb.config.app_secret})
    try:
        deadline = time.monotonic() + 60
        while len(messages(sb)) < before + 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    sb.configure(fault_timeout=0.0)
    assert len(to_user(sb, e.key)) == 1
    assert len(to_user(sb, MANAGERS[0])) == 1
    return e


def test_unconfirmed_message_is_not_sent_again_after_the_uuid_window(
        sb: SandboxServer, tmp_path: Path, setup: tuple[Config, Ledger, str]) -> None:
    """Killed between send and record; 61 minutes later Feishu would no longer deduplicate:
    nothing is re-sent, both messages are "delivery unknown" in the report and the status."""
    cfg, ledger, admin = setup
    e = _killed_between_send_and_record(sb, tmp_path, cfg, ledger, admin)
    sb.advance_clock(61 * 60)
    later = datetime.now(UTC) + timedelta(minutes=61)
    out = run(cfg, ledger, later)
    assert len(to_user(sb, e.key)) == 1
    assert len(to_user(sb, MANAGERS[0])) == 1
    events = [f"manager_note:{e.key}", f"welcome:{e.key}"]
    assert out.notified is not None
    assert (out.notified.unknown, out.notified.sent) == (events, [])
    assert {r.event: r.status for r in ledger.notifications(kinds=notify.PEOPLE_KINDS)} == {
        ev: "unknown" for ev in events}
    report = in_chat(sb, admin)[-1]
    assert "delivery unknown 2" in report
    for ev in events:
        assert f"delivery unknown {ev}: sent once without a confirmation" in report
    run(cfg, ledger, later + timedelta(days=1))
    assert len(to_user(sb, e.key)) == 1
    assert len(to_user(sb, MANAGERS[0])) == 1
    result = CliRunner().invoke(cli_app, ["status", "-c", str(tmp_path / "orgsync.yaml")],
                                env={"NOTIFY_TEST_SECRET": sb.config.app_secret})
    assert result.exit_code == 0
    shown = " ".join(result.output.split())
    for ev in events:
        assert f"Message {ev}: delivery unknown — attempted at " in shown


def test_unconfirmed_message_is_resent_with_its_uuid_within_the_window(
        sb: SandboxServer, tmp_path: Path, setup: tuple[Config, Ledger, str]) -> None:
    """The attempt is in the ledger before the send; 30 minutes later the retry carries the
    same uuid and Feishu keeps one message."""
    cfg, ledger, admin = setup
    started = datetime.now(UTC)
    e = _killed_between_send_and_record(sb, tmp_path, cfg, ledger, admin)
    rows = ledger.notifications(kinds=notify.PEOPLE_KINDS)
    assert {r.status for r in rows} == {"sending"}
    assert all(r.last_tried_at is not None and r.last_tried_at >= started - timedelta(seconds=1)
               for r in rows)
    sb.advance_clock(30 * 60)
    out = run(cfg, ledger, datetime.now(UTC) + timedelta(minutes=30))
    assert out.notified is not None
    assert out.notified.sent == [f"manager_note:{e.key}", f"welcome:{e.key}"]
    assert len(to_user(sb, e.key)) == 1
    assert len(to_user(sb, MANAGERS[0])) == 1
    assert {r.status for r in ledger.notifications(kinds=notify.PEOPLE_KINDS)} == {"sent"}


def _created_unreachable(sb: SandboxServer, cfg: Config, ledger: Ledger, e: Employee) -> None:
    planned = with_client(cfg, lambda c: make_plan(cfg, ledger, c, now=T0))
    with_client(cfg, lambda c: apply_plan(cfg, ledger, c, planned.plan, run_id="r", now=T0))
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


def test_throttled_welcome_stays_pending_for_the_next_run(sb: SandboxServer, tmp_path: Path,
                                                         setup: tuple[Config, Ledger, str]
                                                         ) -> None:
    """230020 (message throttling, feishu-api-more.md §1.8) past the client's retries keeps
    the welcome pending, not failed; the next run sends it."""
    cfg, ledger, _ = setup
    cfg = replace(cfg, feishu=replace(cfg.feishu, max_retries=1))
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    sb.configure(im_throttled=True)
    out = run(cfg, ledger, T0)
    assert out.exit_code == 0
    assert out.notified is not None
    assert sorted(out.notified.pending) == [f"manager_note:{e.key}", f"welcome:{e.key}"]
    assert out.notified.failed == {}
    row = next(r for r in ledger.notifications() if r.event == f"welcome:{e.key}")
    assert (row.status, row.code) == ("pending", 230020)
    sb.configure(im_throttled=False)
    out = run(cfg, ledger, T0 + timedelta(minutes=5))
    assert out.notified is not None
    assert sorted(out.notified.sent) == [f"manager_note:{e.key}", f"welcome:{e.key}"]
    assert len(to_user(sb, e.key)) == 1


def test_unreachable_welcome_expires_and_is_reported(sb: SandboxServer, tmp_path: Path,
                                                     setup: tuple[Config, Ledger, str]) -> None:
    """Still unreachable after retry_days: expired, named in the admin report, never retried."""
    cfg, ledger, admin = setup
    e = joiner(1, MANAGERS[0], T0)
    write_csv(with_people(e), tmp_path / "s")
    _created_unreachable(sb, cfg, ledger, e)
    # The retry days count from the day the ledger wrote the welcome's row (its own clock):
    # the day after T0's when the suite crossed midnight (UTC) in between.
    row = next(r for r in ledger.notifications() if r.event == f"welcome:{e.key}")
    day0 = T0 + timedelta(days=(row.created_at.date() - T0.date()).days)
    out = run(cfg, ledger, day0 + timedelta(days=7))
    assert out.notified is not None
    assert out.notified.pending == [f"welcome:{e.key}"]
    out = run(cfg, ledger, day0 + timedelta(days=8))
    assert out.exit_code == 0
    assert out.notified is not None
    assert out.notified.expired == [f"welcome:{e.key}"]
    assert f"expired welcome:{e.key}" in in_chat(sb, admin)[-1]
    sb.tenant.set_reachable(e.key, True)
    out = run(cfg, ledger, day0 + timedelta(days=9))
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


# ------------------------------------------------- HR copies, failed runs, transfers, leavers


def path(key: str) -> str:
    """The department path orgsync's messages show for ``key`` (names of ORG, top first)."""
    names: list[str] = []
    k: str | None = key
    while k is not None:
        names.append(ORG.departments[k].name)
        k = ORG.departments[k].parent_key
    return " / ".join(reversed(names))


def notifying(sb: SandboxServer, tmp_path: Path, admin: str, **notify_extra: Any) -> Config:
    """The setup's config (same source and ledger) with more ``notify`` options."""
    return config(sb, tmp_path / "s", tmp_path / "l.db",
                  notify={"admin_chat_id": admin, "retry_days": 7, **notify_extra})


def row_of(ledger: Ledger, event: str) -> Any:
    return next(r for r in ledger.notifications() if r.event == event)


def test_hr_chat_gets_one_copy_of_each_manager_note(sb: SandboxServer, tmp_path: Path,
                                                    setup: tuple[Config, Ledger, str]) -> None:
    """hr_chat_id set: one copy of each joiner's manager note there, none again on re-runs."""
    _, ledger, admin = setup
    hr = make_chat(setup[0], "hr-onboarding")
    cfg = notifying(sb, tmp_path, admin, hr_chat_id=hr)
    people = [joiner(1, MANAGERS[0], T0), joiner(2, MANAGERS[1], T0)]
    write_csv(with_people(*people), tmp_path / "s")
    out = run(cfg, ledger, T0)
    assert out.notified is not None
    assert [e for e in out.notified.sent if e.startswith("hr_note:")] == ["hr_note:N0001",
                                                                          "hr_note:N0002"]
    for day in (0, 1, 2):
        run(cfg, ledger, T0 + timedelta(days=day))
    expected = []
    for e in people:
        dept, start = path(e.department_keys[0]), T0.date().isoformat()
        expected.append(f"{e.name} 已加入你的团队（{dept}），入职日期 {start}。\n\n"
                        f"{e.name} has joined your team ({dept}); first day {start}.")
    assert sorted(in_chat(sb, hr)) == sorted(expected)
    copies = [m for m in messages(sb) if m["chat_id"] == hr]
    assert sorted(m["uuid"] for m in copies) == sorted(
        notification_uuid(f"hr_note:{e.key}") for e in people)
    for e in people:  # the manager's own note is not replaced by the copy
        assert len(to_user(sb, e.manager_key or "")) == 1


def test_failed_run_alerts_the_admin_chat_once_with_its_run_id(
        sb: SandboxServer, tmp_path: Path, setup: tuple[Config, Ledger, str]) -> None:
    """A run that fails (its source is gone) sends one alert naming its run id; never twice."""
    cfg, ledger, admin = setup
    (tmp_path / "s" / "employees.csv").unlink()
    before = len(in_chat(sb, admin))
    with pytest.raises(SourceError) as err:
        run(cfg, ledger, T0)
    failed = ledger.runs(1)[0]
    assert failed.status == "failed"
    alerts = in_chat(sb, admin)[before:]
    assert alerts == [f"orgsync run {failed.id} FAILED: {err.value}"]
    assert row_of(ledger, f"alert:failed:{failed.id}").status == "sent"
    # the same event again (a retry of the alert) sends nothing more
    with_client(cfg, lambda c: send_alert(cfg, ledger, c, f"alert:failed:{failed.id}", "again"))
    assert in_chat(sb, admin)[before:] == alerts
    # a second failing run is a second failure: one alert of its own
    with pytest.raises(SourceError):
        run(cfg, ledger, T0)
    second = ledger.runs(1)[0]
    assert second.id != failed.id
    assert [t for t in in_chat(sb, admin)[before:] if "FAILED" in t] == [
        alerts[0], f"orgsync run {second.id} FAILED: {err.value}"]


def moved(key: str, dept: str, manager: str) -> Employee:
    return replace(ORG.employees[key], department_keys=(dept,), manager_key=manager)


MOVER = "E00017"  # 余鹏 in 战略研究部 (D0006) under E00006; moves to 用户体验部 (D0005), E00005


def transfer_text(e: Employee, old: str, new: str, day: str) -> str:
    return (f"{e.name} 已从 {path(old)} 调入你的团队（{path(new)}），{day} 生效。\n\n"
            f"{e.en_name} has moved from {path(old)} to your team ({path(new)}) as of {day}.")


def test_transfer_notes_are_off_by_default(sb: SandboxServer, tmp_path: Path,
                                           setup: tuple[Config, Ledger, str]) -> None:
    """Without notify.transfer_notes a move messages nobody (the run report aside)."""
    cfg, ledger, admin = setup
    write_csv(with_people(moved(MOVER, "D0005", "E00005")), tmp_path / "s")
    out = run(cfg, ledger, T0)
    assert OpKind.USER_MOVE in {op.kind for op in out.plan.operations}
    assert out.notified is not None
    assert out.notified.sent == []
    assert [m for m in messages(sb) if m["chat_id"] != admin] == []


def test_each_transfer_notes_the_new_manager_once(sb: SandboxServer, tmp_path: Path,
                                                  setup: tuple[Config, Ledger, str]) -> None:
    """A→B→A→B: three notes, each to the manager after that move, each sent exactly once —
    though the first and last moves are the very same plan (same plan id, same token)."""
    _, ledger, admin = setup
    cfg = notifying(sb, tmp_path, admin, transfer_notes=True)
    there, back = moved(MOVER, "D0005", "E00005"), ORG.employees[MOVER]
    # move 1, applied by a run that dies before messaging: the note is owed, not lost
    write_csv(with_people(there), tmp_path / "s")
    first = with_client(cfg, lambda c: make_plan(cfg, ledger, c, now=T0)).plan
    with_client(cfg, lambda c: apply_plan(cfg, ledger, c, first, run_id="died", now=T0))
    [owed] = ledger.notifications(kinds=notify.TRANSFER_KINDS)
    assert (owed.event, owed.target, owed.status) == (
        f"transfer_note@died@D0006@D0005:{MOVER}", MOVER, "pending")
    assert to_user(sb, "E00005") == []
    run(cfg, ledger, T0)
    run(cfg, ledger, T0)
    # move 2 (back), then move 3 (there again: the same plan as move 1)
    write_csv(with_people(back), tmp_path / "s")
    run(cfg, ledger, T0 + timedelta(days=1))
    write_csv(with_people(there), tmp_path / "s")
    third = run(cfg, ledger, T0 + timedelta(days=2))
    assert third.plan.plan_id == first.plan_id
    for day in (2, 3):
        assert run(cfg, ledger, T0 + timedelta(days=day)).plan.empty
    rows = ledger.notifications(kinds=notify.TRANSFER_KINDS)
    assert len(rows) == 3
    assert {r.status for r in rows} == {"sent"}
    assert len({r.uuid for r in rows}) == 3
    day = rows[0].created_at.date().isoformat()
    assert {r.created_at.date().isoformat() for r in rows} == {day}
    mover = ORG.employees[MOVER]
    to_new = [json.loads(m["content"])["text"] for m in to_user(sb, "E00005")]
    to_old = [json.loads(m["content"])["text"] for m in to_user(sb, "E00006")]
    assert to_new == [transfer_text(mover, "D0006", "D0005", day)] * 2
    assert to_old == [transfer_text(mover, "D0005", "D0006", day)]
    assert to_user(sb, MOVER) == []  # transfer_to defaults to the manager only
    assert sorted(m["uuid"] for m in to_user(sb, "E00005")) == sorted(
        r.uuid for r in rows if r.event.endswith(f"@D0006@D0005:{MOVER}"))


def test_transfer_can_also_tell_the_person_moved(sb: SandboxServer, tmp_path: Path,
                                                 setup: tuple[Config, Ledger, str]) -> None:
    """transfer_to: [manager, employee] — a transfer_welcome to the person (custom template)."""
    _, ledger, admin = setup
    cfg = notifying(sb, tmp_path, admin, transfer_notes=True, transfer_to=["manager", "employee"],
                    templates={"transfer_welcome": {
                        "msg_type": "text", "zh": "{name}：{old_department} → {new_department}，"
                                                  "上级 {manager}（{transfer_date}）"}})
    write_csv(with_people(moved(MOVER, "D0005", "E00005")), tmp_path / "s")
    out = run(cfg, ledger, T0)
    assert out.notified is not None
    assert len(out.notified.sent) == 2
    [to_them] = to_user(sb, MOVER)
    day = row_of(ledger, out.notified.sent[1]).created_at.date().isoformat()
    assert json.loads(to_them["content"])["text"] == (
        f"余鹏：{path('D0006')} → {path('D0005')}，上级 {ORG.employees['E00005'].name}（{day}）")
    assert len(to_user(sb, "E00005")) == 1


def test_secondary_department_change_is_no_transfer(sb: SandboxServer, tmp_path: Path,
                                                    setup: tuple[Config, Ledger, str]) -> None:
    """Adding a second department moves nobody's primary department: no transfer note."""
    _, ledger, admin = setup
    cfg = notifying(sb, tmp_path, admin, transfer_notes=True)
    e = ORG.employees[MOVER]
    write_csv(with_people(replace(e, department_keys=(*e.department_keys, "D0005"))),
              tmp_path / "s")
    out = run(cfg, ledger, T0)
    assert [op.kind for op in out.plan.operations] == [OpKind.USER_MOVE]
    assert ledger.notifications(kinds=notify.TRANSFER_KINDS) == []
    assert [m for m in messages(sb) if m["chat_id"] != admin] == []


LEAVER = "E00024"  # 彭伟涵 in 用户体验部 (D0005), manager E00005 (肖婷平)


def leaver_text(day: str) -> str:
    e = ORG.employees[LEAVER]
    return (f"{e.name}（{path('D0005')}）已于 {day} 离职，飞书账号已停用。\n\n"
            f"{e.en_name} ({path('D0005')}) left on {day}; their Feishu account is disabled.")


def without(key: str) -> Snapshot:
    return Snapshot(dict(ORG.departments), {k: v for k, v in ORG.employees.items() if k != key})


def test_leaver_frozen_then_deleted_notes_the_manager_and_hr_once(
        sb: SandboxServer, tmp_path: Path, setup: tuple[Config, Ledger, str]) -> None:
    """Frozen: one note to the manager, one copy in the HR chat, nothing to the leaver; the
    delete after the grace period sends no second note."""
    _, ledger, admin = setup
    hr = make_chat(setup[0], "hr")
    cfg = notifying(sb, tmp_path, admin, leaver_notes=True, hr_chat_id=hr)
    leaver = sb.tenant.find_user(LEAVER, "user_id")
    assert leaver is not None
    write_csv(without(LEAVER), tmp_path / "s")
    out = run(cfg, ledger, T0)
    assert [op.kind for op in out.plan.operations] == [OpKind.USER_FREEZE]
    assert out.notified is not None
    assert out.notified.sent == [f"hr_leaver_note@{out.run_id}:{LEAVER}",
                                 f"leaver_note@{out.run_id}:{LEAVER}"]
    day = row_of(ledger, out.notified.sent[1]).created_at.date().isoformat()
    run(cfg, ledger, T0 + timedelta(days=1))
    deleted = run(cfg, ledger, T0 + timedelta(days=15))
    assert [op.kind for op in deleted.plan.operations] == [OpKind.USER_DELETE]
    run(cfg, ledger, T0 + timedelta(days=16))
    assert [json.loads(m["content"])["text"] for m in to_user(sb, "E00005")] == [leaver_text(day)]
    assert in_chat(sb, hr) == [leaver_text(day)]
    assert [m for m in messages(sb) if m["receiver"] == leaver.open_id] == []
    assert {r.status for r in ledger.notifications(kinds=notify.LEAVER_KINDS)} == {"sent"}
    assert len(ledger.notifications(kinds=notify.LEAVER_KINDS)) == 2


def test_leaver_deleted_at_once_still_notes_the_manager(sb: SandboxServer, tmp_path: Path,
                                                        setup: tuple[Config, Ledger, str]) -> None:
    """leaver_action: delete — the leaver is DELETED in the mirror by delivery time, yet the
    note goes to the manager their record kept; off by default."""
    _, ledger, admin = setup
    quiet = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"leaver_action": "delete"},
                   notify={"admin_chat_id": admin})
    assert quiet.notify.leaver_notes is False
    write_csv(without("E00025"), tmp_path / "s")
    run(quiet, ledger, T0)
    assert to_user(sb, "E00002") == []
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"leaver_action": "delete"},
                 notify={"admin_chat_id": admin, "leaver_notes": True, "language": "en"})
    write_csv(Snapshot(dict(ORG.departments), {k: v for k, v in ORG.employees.items()
                                               if k not in ("E00025", LEAVER)}), tmp_path / "s")
    out = run(cfg, ledger, T0)
    assert [op.kind for op in out.plan.operations] == [OpKind.USER_DELETE]
    assert ledger.load_state().users[LEAVER].lifecycle.value == "deleted"
    assert out.notified is not None
    [event] = out.notified.sent
    assert event == f"leaver_note@{out.run_id}:{LEAVER}"
    day = row_of(ledger, event).created_at.date().isoformat()
    e = ORG.employees[LEAVER]
    assert [json.loads(m["content"])["text"] for m in to_user(sb, "E00005")] == [
        f"{e.en_name} ({path('D0005')}) left on {day}; their Feishu account is disabled."]
    run(cfg, ledger, T0 + timedelta(days=1))
    assert len(to_user(sb, "E00005")) == 1


def test_department_group_chat_for_new_departments(sb: SandboxServer, tmp_path: Path) -> None:
    """sync.department_group_chat: a new department gets a chat (the plan says so); off (the
    default), none."""
    write_csv(ORG, tmp_path / "s")
    off = config(sb, tmp_path / "s", tmp_path / "l.db")
    assert off.sync.department_group_chat is False
    ledger = Ledger(off.ledger.url)
    out = run(off, ledger, T0)
    creates = [op for op in out.plan.operations if op.kind is OpKind.DEPT_CREATE]
    assert len(creates) == 6
    assert all("create_group_chat" not in op.payload for op in creates)
    for key in ORG.departments:
        dept = sb.tenant.find_department(key, "department_id")
        assert dept is not None
        assert dept.chat_id == ""
    on = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"department_group_chat": True})
    new = Department(key="D0007", name="数据平台部", parent_key="D0001", order=30)
    boss = MANAGERS[0]
    led = Department(key="D0008", name="安全部", parent_key="D0001", order=31, leader_key=boss)
    write_csv(Snapshot({**ORG.departments, "D0007": new, "D0008": led}, dict(ORG.employees)),
              tmp_path / "s")
    planned = with_client(on, lambda c: make_plan(on, ledger, c, now=T0)).plan
    ops = {(op.kind, op.key): op for op in planned.operations}
    assert sorted(ops) == [(OpKind.DEPT_CREATE, "D0007"), (OpKind.DEPT_CREATE, "D0008"),
                           (OpKind.DEPT_SET_LEADER, "D0008")]
    assert ops[OpKind.DEPT_CREATE, "D0007"].payload["create_group_chat"] is True
    # with a leader, the chat is asked for with the leader link: Feishu makes them its owner
    assert "create_group_chat" not in ops[OpKind.DEPT_CREATE, "D0008"].payload
    assert ops[OpKind.DEPT_SET_LEADER, "D0008"].payload["create_group_chat"] is True
    assert "create_group_chat: True" in render_markdown(planned)
    assert run(on, ledger, T0).plan.plan_id == planned.plan_id
    dept = sb.tenant.find_department("D0007", "department_id")
    assert dept is not None
    assert dept.chat_id.startswith("oc_")
    assert sb.tenant.chats[dept.chat_id]["kind"] == "department"
    assert sb.tenant.chats[dept.chat_id]["name"] == "数据平台部"
    owned = sb.tenant.find_department("D0008", "department_id")
    owner = sb.tenant.find_user(boss, "user_id")
    assert owned is not None
    assert owner is not None
    assert sb.tenant.chats[owned.chat_id]["owner"] == owner.open_id
    for key in ORG.departments:  # existing departments are never given one
        old = sb.tenant.find_department(key, "department_id")
        assert old is not None
        assert old.chat_id == ""


def _notify_config(tmp_path: Path, notify_section: dict[str, Any]) -> Config:
    return config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
                             "source": {"type": "csv"}, "notify": notify_section},
                            file="c.yaml", base_dir=tmp_path)


@pytest.mark.parametrize(("section", "key", "message"), [
    ({"templates": {"transfer_note": {"zh": "{name} 调入 {new_dept}"}}},
     "notify.templates.transfer_note.zh", "unknown variable '{new_dept}'"),
    ({"templates": {"transfer_welcome": {"msg_type": "post", "en": {
        "title": "{leave_date}", "content": []}}}},
     "notify.templates.transfer_welcome.en.title", "unknown variable '{leave_date}'"),
    ({"templates": {"leaver_note": {"en": "{en_name} left {old_department}"}}},
     "notify.templates.leaver_note.en", "unknown variable '{old_department}'"),
    ({"templates": {"welcome": {"zh": "{new_department}"}}},
     "notify.templates.welcome.zh", "unknown variable '{new_department}'"),
    ({"templates": {"leaver_notes": {"zh": "x"}}}, "notify.templates.leaver_notes",
     "unknown event"),
    ({"links": {"leave_date": "https://x"}}, "notify.links.leave_date",
     "is not a usable variable name"),
    ({"transfer_to": ["manager", "boss"]}, "notify.transfer_to[1]", "'boss' is not one of"),
    ({"transfer_to": []}, "notify.transfer_to", "expected a list of receivers"),
    ({"leaver_notes": "sometimes"}, "notify.leaver_notes", "expected true or false"),
])
def test_bad_transfer_and_leaver_settings_name_the_key(tmp_path: Path, section: dict[str, Any],
                                                       key: str, message: str) -> None:
    """Template variables are checked per event at load: a transfer's variables are unknown
    to welcomes and leaver notes, and the reverse; bad switches name their key."""
    with pytest.raises(ConfigError) as err:
        _notify_config(tmp_path, section)
    assert err.value.key == key
    assert message in str(err.value)


def test_transfer_and_leaver_settings_load(tmp_path: Path) -> None:
    """The switches default off; transfer_to takes one receiver or a list; event variables
    are accepted where they belong."""
    default = _notify_config(tmp_path, {"admin_chat_id": "oc_x"}).notify
    assert (default.transfer_notes, default.transfer_to, default.leaver_notes) == (
        False, ("manager",), False)
    cfg = _notify_config(tmp_path, {
        "transfer_notes": True, "transfer_to": "employee", "leaver_notes": "yes",
        "templates": {
            "transfer_note": {"zh": "{name}: {old_department} → {new_department} {transfer_date}"},
            "leaver_note": {"en": "{en_name} left on {leave_date}"}}}).notify
    assert (cfg.transfer_notes, cfg.transfer_to, cfg.leaver_notes) == (True, ("employee",), True)
    assert set(cfg.templates) == {"transfer_note", "leaver_note"}


def test_event_keys_round_trip_whatever_the_keys_hold() -> None:
    """Qualifiers are percent-encoded: ``:`` and ``@`` in department or employee keys survive,
    and the ledger files the row under the plain kind and the employee."""
    event = notify.event_key("transfer_note", "E:1@x", "run-1", "D:a@b", "D%c")
    assert notify.event_parts(event) == ("transfer_note", ("run-1", "D:a@b", "D%c"), "E:1@x")
    assert event_kind_target(event) == ("transfer_note", "E:1@x")
    assert event_kind_target("welcome:E@1") == ("welcome", "E@1")
    assert event_kind_target("alert:failed:r1") == ("alert", "failed:r1")
