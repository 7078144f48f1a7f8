"""Guards that only move on success, over a real socket (issue #14, findings 2–4).

The shrink baseline moves only when an apply completed; a cut-off export under the
fixed thresholds is held by the churn guard; deletes falling due at the end of a grace
period count against the removal thresholds; mass renames are held by the identity
guard, and ``encoding: auto`` refuses an export it cannot decode with confidence.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.config import SafetyConfig, config_from_dict
from orgsync.errors import (
    EXIT_FEISHU,
    EXIT_HELD,
    EXIT_OK,
    EXIT_SOURCE,
    ConfigError,
    PlanHeld,
    SourceError,
)
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.safety import churn_limit
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import SCALE, config, read_back, run
from tests.test_safety import leaves, without, writes


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def frozen(sb: SandboxServer) -> set[str]:
    return {u.user_id for u in sb.tenant.users.values() if u.frozen}


def resigned(sb: SandboxServer) -> set[str]:
    return {u.user_id for u in sb.tenant.users.values() if u.resigned}


class TestShrinkBaseline:
    @staticmethod
    def conf(sb: SandboxServer, tmp_path: Path) -> Path:
        path = tmp_path / "orgsync.yaml"
        path.write_text(json.dumps({
            "version": 1,
            "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                       "app_secret": "${GUARDS_TEST_SECRET}", "rate_scale": SCALE},
            "source": {"type": "csv", "departments": "src/departments.csv",
                       "employees": "src/employees.csv"},
            "ledger": {"url": "sqlite:///ledger.db"},
        }), encoding="utf-8")
        return path

    @staticmethod
    def cli(conf: Path, *args: str, secret: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "-c", str(conf)],
                                    env={"GUARDS_TEST_SECRET": secret})
        return result.exit_code, " ".join(result.output.split())

    def test_only_a_completed_apply_moves_the_shrink_baseline(self, sb: SandboxServer,
                                                               tmp_path: Path) -> None:
        """40 applied, the export cut to 20: 'plan --accept-shrink' no longer disarms the
        guard (the next plain 'apply --yes' is still refused, nobody frozen); refused and
        held runs and an apply whose writes all failed leave the baseline at 40; the
        completed apply of the accepted drop moves it to 20."""
        org = generate_org(employees=40, departments=8, levels=3)
        write_csv(org, tmp_path / "src")
        conf = self.conf(sb, tmp_path)
        secret = sb.config.app_secret
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")

        def baseline() -> str | None:
            return ledger.get_meta("last_good_employees")

        assert self.cli(conf, "apply", "--yes", secret=secret)[0] == EXIT_OK
        assert baseline() == "40"
        gone = leaves(org, 20)
        write_csv(without(org, gone), tmp_path / "src")
        code, text = self.cli(conf, "apply", "--yes", secret=secret)
        assert code == EXIT_SOURCE
        assert "50% fewer than the last good read (40)" in text
        code, _ = self.cli(conf, "plan", "--accept-shrink", secret=secret)
        assert code in (EXIT_OK, EXIT_HELD)  # a dry run: whatever it shows, it moves nothing
        assert baseline() == "40"

        code, text = self.cli(conf, "apply", "--yes", secret=secret)
        assert code == EXIT_SOURCE
        assert "50% fewer than the last good read (40)" in text
        assert frozen(sb) == set()
        assert baseline() == "40"

        # Accepted, but 20 leavers at once are over the churn floor: held, not applied.
        code, text = self.cli(conf, "apply", "--yes", "--accept-shrink", secret=secret)
        assert code == EXIT_HELD
        found = re.search(r"plan (\w+) is held", text)
        assert found is not None
        assert (frozen(sb), baseline()) == (set(), "40")
        # Approved, but Feishu refuses the app's credentials: the run stops, failed.
        plan_id = found.group(1)
        code, _ = self.cli(conf, "approve", plan_id, "--yes", "--accept-shrink",
                           secret="not-the-secret")
        assert code == EXIT_FEISHU
        assert ledger.runs(limit=1)[0].status == "failed"
        assert (frozen(sb), baseline()) == (set(), "40")
        # Approved again and applied in full: the drop is confirmed.
        code, _ = self.cli(conf, "approve", plan_id, "--yes", "--accept-shrink", secret=secret)
        assert code == EXIT_OK
        assert ledger.runs(limit=1)[0].status == "ok"
        assert frozen(sb) == gone
        assert baseline() == "20"
        assert self.cli(conf, "apply", "--yes", secret=secret)[0] == EXIT_OK


class TestChurn:
    def test_cut_off_export_under_the_thresholds_is_held(self, sb: SandboxServer,
                                                         tmp_path: Path) -> None:
        """Dropping the last 19.5 % of 200 rows (under every fixed threshold) after quiet
        applied runs is held by the churn guard; nobody is frozen."""
        org = generate_org(employees=200, departments=20, levels=4)
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        for _ in range(3):
            assert run(cfg, ledger).plan.empty
        path = tmp_path / "s" / "employees.csv"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[:1 + 161]), encoding="utf-8")  # header + 161 of 200
        before = len(writes(sb))
        with pytest.raises(PlanHeld) as held:
            run(cfg, ledger)
        assert held.value.reasons == [
            "39 leavers (freezes + deletes of active users) exceed the churn limit 10 "
            "(safety.churn_factor=3 × median 0 of the last 4 applied runs' leavers, "
            "safety.churn_floor=10)"]
        assert len(writes(sb)) == before
        assert frozen(sb) == set()
        assert ledger.leaver_history(8) == [0, 0, 0, 0]  # the held run recorded none

    def test_usual_churn_passes_and_is_recorded(self, sb: SandboxServer,
                                                tmp_path: Path) -> None:
        """Leavers within the limit are applied, and their count joins the history."""
        org = generate_org(employees=60, departments=12, levels=4)
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        gone = leaves(org, 4)
        write_csv(without(org, gone), tmp_path / "s")
        assert run(cfg, ledger).exit_code == EXIT_OK
        assert frozen(sb) == gone
        assert ledger.leaver_history(8) == [4, 0]


class TestGraceDeletes:
    def test_clock_jump_past_the_grace_period_holds_the_deletes(self, sb: SandboxServer,
                                                                tmp_path: Path) -> None:
        """15 of 60 frozen over three quiet runs (5 each, within every limit); a clock jump
        past grace_days makes all 15 deletes due at once: held like any over-threshold
        plan, nobody deleted; approving exactly that plan deletes them."""
        org = generate_org(employees=60, departments=12, levels=4)
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db", lifecycle={"grace_days": 14})
        ledger = Ledger(cfg.ledger.url)
        t0 = datetime.now(UTC)
        run(cfg, ledger, t0)
        gone = sorted(leaves(org, 15))
        for n in (5, 10, 15):
            write_csv(without(org, set(gone[:n])), tmp_path / "s")
            assert run(cfg, ledger, t0).exit_code == EXIT_OK
        assert frozen(sb) == set(gone)
        before = len(writes(sb))
        with pytest.raises(PlanHeld) as held:
            run(cfg, ledger, t0 + timedelta(days=30))
        assert held.value.reasons == [
            "15 user removals (deletes + freezes) are 25% of the 60 managed, "
            "over safety.max_user_removal_fraction=20%"]
        assert len(writes(sb)) == before
        assert resigned(sb) == set()
        assert ledger.approve_plan(held.value.plan_id)
        out = run(cfg, ledger, t0 + timedelta(days=30))
        assert out.plan.plan_id == held.value.plan_id
        assert resigned(sb) == set(gone)


TRADITIONAL_NAMES = ("陳志明", "林淑芬", "黃建國", "張雅婷", "李宗翰", "王美玲", "吳俊傑",
                     "劉怡君", "蔡家豪", "楊淑惠", "許文龍", "鄭麗華", "謝明輝", "郭曉萍",
                     "洪國強", "曾雅雯", "邱志偉", "廖美華", "賴俊宏", "周佳穎")


def traditional(org: Snapshot) -> Snapshot:
    """``org`` with every text Big5 can hold: traditional names, titles, cities, units."""
    return Snapshot(
        {k: replace(d, name=f"營運處{i:02d}") for i, (k, d) in enumerate(org.departments.items())},
        {k: replace(e, name=TRADITIONAL_NAMES[i % len(TRADITIONAL_NAMES)] + "甲乙丙丁"[i // 20],
                    job_title="資深工程師", city="台北")
         for i, (k, e) in enumerate(org.employees.items())})


class TestIdentity:
    def test_big5_export_with_auto_encoding_is_refused(self, sb: SandboxServer,
                                                       tmp_path: Path) -> None:
        """The same export re-saved as Big5 with encoding: auto is refused (exit 4, naming
        the candidate encodings and the remedy) instead of renaming 60 people to mojibake."""
        org = traditional(generate_org(employees=60, departments=12, levels=4))
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
        cfg = replace(cfg, source=replace(cfg.source, options={**cfg.source.options,
                                                               "encoding": "auto"}))
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        names = {k: u.record.name for k, u in read_back(cfg).users.items()}
        for name in ("departments.csv", "employees.csv"):
            path = tmp_path / "s" / name
            path.write_bytes(path.read_text(encoding="utf-8").encode("big5"))
        before = len(writes(sb))
        with pytest.raises(SourceError) as refused:
            run(cfg, ledger)
        assert refused.value.exit_code == EXIT_SOURCE
        message = str(refused.value)
        assert "encoding: auto cannot tell this file's encoding with confidence" in message
        assert "Set source.encoding to the encoding the file was saved in, one of big5, " \
               "gb18030 (most plausible first)" in message
        assert len(writes(sb)) == before
        assert {k: u.record.name for k, u in read_back(cfg).users.items()} == names
        cfg = replace(cfg, source=replace(cfg.source, options={**cfg.source.options,
                                                               "encoding": "big5"}))
        assert run(cfg, ledger).plan.empty  # read as what it is, nothing changed

    def test_mass_rename_is_held_by_the_identity_guard(self, sb: SandboxServer,
                                                       tmp_path: Path) -> None:
        """40 of 60 managed people changing name (or email, or mobile) in one run are held;
        nothing is written until that plan is approved."""
        org = generate_org(employees=60, departments=12, levels=4)
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        keys = sorted(org.employees)[:40]
        employees = dict(org.employees)
        for i, k in enumerate(keys):
            e = employees[k]
            employees[k] = replace(e, name=e.name + "改") if i % 2 else \
                replace(e, name=e.name + "改", email=f"x{i}@example.com")  # once each
        write_csv(Snapshot(dict(org.departments), employees), tmp_path / "s")
        before = len(writes(sb))
        with pytest.raises(PlanHeld) as held:
            run(cfg, ledger)
        assert held.value.reasons == [
            "40 managed users changing name, email or mobile are 67% of the 60 managed, "
            "over safety.max_identity_change_fraction=30%"]
        assert len(writes(sb)) == before
        assert ledger.approve_plan(held.value.plan_id)
        run(cfg, ledger)
        assert read_back(cfg).users[keys[1]].record.name == org.employees[keys[1]].name + "改"


class TestChurnLimit:
    @pytest.mark.parametrize(("history", "limit"), [
        ((), 10),                    # no history: the floor alone
        ((0,) * 8, 10),              # quiet runs: the median is 0, the floor rules
        ((0, 0, 40), 10),            # one large run does not move the median
        ((6, 7, 8, 9), 22.5),        # 3 × 7.5
        ((12, 15, 9, 200, 11), 36),  # 3 × 12
    ])
    def test_limit_is_k_times_the_median_or_the_floor(self, history: tuple[int, ...],
                                                       limit: float) -> None:
        """max(churn_factor × median(history), churn_floor) with the defaults (3, 10)."""
        assert churn_limit(history, SafetyConfig()) == limit

    def test_history_is_what_applied_runs_recorded(self, tmp_path: Path) -> None:
        """Newest first, at most the window; plans, held, cancelled and failed runs and runs
        without a recorded count are left out."""
        clock = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(99))
        ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", now=lambda: next(clock))
        for mode, status, summary in [
                ("apply", "ok", {"leavers": 1}), ("apply", "ok", {"user.freeze": 9}),
                ("apply", "partial", {"leavers": 2}), ("plan", "held", {"user.freeze": 50}),
                ("apply", "cancelled", {"user.freeze": 50}), ("apply", "failed", {}),
                ("resync", "ok", {"leavers": 3}), ("apply", "ok", {"leavers": 4})]:
            ledger.finish_run(ledger.start_run(mode), status, summary=summary)
        assert ledger.leaver_history(8) == [4, 3, 2, 1]
        assert ledger.leaver_history(2) == [4, 3]


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("churn_factor", -1, "-1.0 is out of range (use a value >= 0.0)"),
    ("churn_window", 0, "0 is out of range (use a value >= 1 and <= 1000)"),
    ("churn_floor", "ten", "expected an integer, got 'ten' (write e.g. churn_floor: 3)"),
    ("max_identity_change_fraction", 1.5,
     "1.5 is out of range (use a value >= 0.0 and <= 1.0)"),
])
def test_bad_guard_settings_fail_fast(key: str, value: object, problem: str) -> None:
    """Each new safety key is validated: a ConfigError naming file, key and remedy."""
    with pytest.raises(ConfigError) as err:
        config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
                          "source": {"type": "csv"}, "safety": {key: value}}, file="o.yaml")
    assert (err.value.file, err.value.key) == ("o.yaml", f"safety.{key}")
    assert str(err.value) == f"o.yaml: safety.{key}: {problem}"
