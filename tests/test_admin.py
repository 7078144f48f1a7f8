"""The daemon's admin endpoint, served by a real daemon over a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orgsync.model import Snapshot
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.daemon_proc import TOKEN, InProcessDaemon, config_data, daemon_config, metric, wait_for

SMALL = {"employees": 16, "departments": 4, "levels": 3}


def small_org() -> Snapshot:
    """The test company."""
    return generate_org(employees=SMALL["employees"], departments=SMALL["departments"],
                        levels=SMALL["levels"])


@pytest.fixture(name="source")
def _source(tmp_path: Path) -> Path:
    write_csv(small_org(), tmp_path / "src")
    return tmp_path / "src"


@pytest.fixture(name="fast_sandbox")
def _fast_sandbox(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=10.0)
    return sandbox


@pytest.fixture(name="admin")
def _admin(fast_sandbox: SandboxServer, source: Path, tmp_path: Path) -> Iterator[InProcessDaemon]:
    """A leading daemon with nothing scheduled (runs only when triggered)."""
    cfg = daemon_config(config_data(fast_sandbox, source, f"sqlite:///{tmp_path / 'l.db'}"),
                        tmp_path)
    d = InProcessDaemon(cfg)
    wait_for(lambda: d.daemon.is_leader, 10, "leadership")
    yield d
    assert d.stop() == 0


class TestOpenEndpoints:
    def test_healthz_answers_while_the_process_serves(self, admin: InProcessDaemon) -> None:
        """/healthz is 200 {"status": "ok"} without a token."""
        reply = admin.get("/healthz")
        assert reply.status_code == 200
        assert reply.json() == {"status": "ok"}

    def test_readyz_waits_for_a_successful_run(self, admin: InProcessDaemon) -> None:
        """/readyz is 503 until a run succeeded, then 200 naming that run."""
        code, body = admin.readyz()
        assert code == 503
        assert body["reason"] == "no run has finished yet"
        run = admin.post("/resync?wait=1", token=TOKEN).json()["run"]
        code, body = admin.readyz()
        assert code == 200
        assert body["ready"] is True
        assert body["role"] == "leader"
        assert body["last_run"] == run["run_id"]
        assert body["last_status"] == "ok"

    def test_readyz_is_503_when_the_last_run_is_too_old(self, fast_sandbox: SandboxServer,
                                                        source: Path, tmp_path: Path) -> None:
        """A successful run older than ready_max_age no longer makes the daemon ready."""
        data = config_data(fast_sandbox, source, f"sqlite:///{tmp_path / 'l.db'}",
                           daemon={"ready_max_age": "1s"})
        d = InProcessDaemon(daemon_config(data, tmp_path))
        try:
            wait_for(lambda: d.daemon.is_leader, 10, "leadership")
            assert d.post("/resync?wait=1", token=TOKEN).status_code == 200
            wait_for(lambda: d.readyz()[0] == 503, 5, "staleness")
            assert d.readyz()[1]["reason"] == "the last run is too old"
        finally:
            assert d.stop() == 0

    def test_metrics_are_prometheus_text_from_the_daemons_registry(
            self, admin: InProcessDaemon) -> None:
        """/metrics serves the exposition format with the daemon's own series."""
        assert admin.post("/resync?wait=1", token=TOKEN).status_code == 200
        reply = admin.get("/metrics", token=TOKEN)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        m = admin.metrics()
        assert metric(m, "orgsync_leader") == 1.0
        assert metric(m, "orgsync_runs_total", kind="full", outcome="ok") == 1.0
        assert metric(m, "orgsync_operations_total", kind="user.create", status="done") == \
            SMALL["employees"]
        assert metric(m, "orgsync_last_success_timestamp_seconds") > 0
        assert metric(m, "orgsync_run_in_progress") == 0.0
        assert "python_gc_objects_collected_total" not in reply.text  # not the global registry


class TestWhatListensWithoutAToken:
    def test_readyz_answers_only_ready_or_not_without_the_token(
            self, admin: InProcessDaemon) -> None:
        """Without the token /readyz says ready or not (the status code and {"ready": …});
        run ids, statuses and reasons need the token."""
        assert (admin.get("/readyz").status_code, admin.get("/readyz").json()) == \
            (503, {"ready": False})
        run = admin.post("/resync?wait=1", token=TOKEN).json()["run"]
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            reply = httpx.get(admin.base + "/readyz", headers=headers)
            assert (reply.status_code, reply.json()) == (200, {"ready": True})
        assert run["run_id"] in admin.get("/readyz", token=TOKEN).text

    @pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token", "Bearer 令牌"])
    def test_metrics_need_the_token(self, admin: InProcessDaemon, header: str | None) -> None:
        """/metrics without the right bearer token is 401 and shows no series."""
        headers = {"Authorization": header.encode()} if header else {}
        reply = httpx.get(admin.base + "/metrics", headers=headers)
        assert reply.status_code == 401
        assert "orgsync_" not in reply.text

    def test_metrics_public_serves_them_to_anyone(self, fast_sandbox: SandboxServer,
                                                  source: Path, tmp_path: Path) -> None:
        """admin.metrics_public: true opens /metrics (only) for scrapers without a token."""
        data = config_data(fast_sandbox, source, f"sqlite:///{tmp_path / 'l.db'}", token=None)
        data["admin"]["metrics_public"] = True
        d = InProcessDaemon(daemon_config(data, tmp_path))
        try:
            reply = d.get("/metrics")
            assert reply.status_code == 200
            assert "orgsync_leader" in reply.text
            assert d.get("/runs").status_code == 403
            assert d.get("/readyz").json() == {"ready": False}
        finally:
            assert d.stop() == 0

    def test_no_metric_carries_a_persons_data(self, admin: InProcessDaemon) -> None:
        """After a run that created everyone, no name, email, mobile or key is in /metrics."""
        assert admin.post("/resync?wait=1", token=TOKEN).json()["run"]["outcome"] == "ok"
        text = admin.get("/metrics", token=TOKEN).text
        people = small_org().employees.values()
        assert len(people) == SMALL["employees"]
        for e in people:
            for value in (e.key, e.name, e.en_name, e.email, e.mobile):
                if value:
                    assert value not in text


class TestToken:
    @pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token", f"Basic {TOKEN}",
                                        "Bearer", f"bearer {TOKEN}x"])
    def test_resync_without_the_right_token_is_401(self, admin: InProcessDaemon,
                                                   header: str | None) -> None:
        """POST /resync answers 401 JSON, and starts nothing, unless the bearer token matches."""
        headers = {"Authorization": header} if header else {}
        reply = httpx.post(admin.base + "/resync", headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"] == "unauthorized"
        assert reply.headers["www-authenticate"] == "Bearer"
        assert len(admin.daemon.history) == 0
        assert admin.runs()["runs"] == []

    def test_runs_needs_the_token(self, admin: InProcessDaemon) -> None:
        """GET /runs is 401 without the token, 200 with it."""
        assert admin.get("/runs").status_code == 401
        assert admin.get("/runs", token=TOKEN).status_code == 200

    def test_token_scheme_is_case_insensitive(self, admin: InProcessDaemon) -> None:
        """'bearer' works as well as 'Bearer' (RFC 7235: the scheme is case-insensitive)."""
        reply = httpx.get(admin.base + "/runs", headers={"Authorization": f"bearer {TOKEN}"})
        assert reply.status_code == 200

    def test_without_a_configured_token_the_guarded_endpoints_are_off(
            self, fast_sandbox: SandboxServer, source: Path, tmp_path: Path) -> None:
        """No admin.token: /resync and /runs are 403 whatever is sent."""
        data = config_data(fast_sandbox, source, f"sqlite:///{tmp_path / 'l.db'}", token=None)
        d = InProcessDaemon(daemon_config(data, tmp_path))
        try:
            reply = d.post("/resync", token=TOKEN)
            assert reply.status_code == 403
            assert "admin.token" in reply.json()["detail"]
            assert d.get("/runs", token=TOKEN).status_code == 403
        finally:
            assert d.stop() == 0

    def test_resync_is_post_only(self, admin: InProcessDaemon) -> None:
        """GET /resync is 405."""
        assert admin.get("/resync", token=TOKEN).status_code == 405


class TestTriggers:
    def test_resync_over_http_runs_a_full_resync(self, admin: InProcessDaemon) -> None:
        """POST /resync?wait=1 answers with the finished run, recorded as a resync."""
        reply = admin.post("/resync?wait=1", token=TOKEN)
        assert reply.status_code == 200
        body = reply.json()
        assert body["status"] == "started"
        assert body["run"]["kind"] == "full"
        assert body["run"]["trigger"] == "http"
        assert body["run"]["outcome"] == "ok"
        runs = admin.runs()["runs"]
        assert [(r["id"], r["mode"], r["status"]) for r in runs] == \
            [(body["run"]["run_id"], "resync", "ok")]

    def test_triggers_during_a_run_are_coalesced_into_one_pending_run(
            self, admin: InProcessDaemon, fast_sandbox: SandboxServer) -> None:
        """One run at a time: the 2nd trigger is queued, the 3rd and 4th fold into it."""
        fast_sandbox.configure(latency_ms=150)
        statuses = [admin.post("/resync", token=TOKEN).json()["status"] for _ in range(4)]
        assert statuses == ["started", "queued", "coalesced", "coalesced"]
        report = admin.runs()
        assert report["current"]["kind"] == "full"
        assert report["pending"] == "full"
        fast_sandbox.configure(latency_ms=0)
        wait_for(lambda: len(admin.daemon.history) == 2 and admin.runs()["current"] is None, 30,
                 "both runs")
        assert [r.outcome for r in admin.daemon.history] == ["ok", "ok"]
        first, second = sorted(admin.daemon.history, key=lambda r: r.started_at)
        assert second.started_at >= first.finished_at  # never two at once
        assert metric(admin.metrics(), "orgsync_runs_coalesced_total") == 2.0

    def test_a_standby_refuses_triggers_and_is_not_ready(
            self, admin: InProcessDaemon, fast_sandbox: SandboxServer, source: Path,
            tmp_path: Path) -> None:
        """A second daemon on the same ledger waits: /readyz 503 standby, /resync 503."""
        data = config_data(fast_sandbox, source, f"sqlite:///{tmp_path / 'l.db'}")
        standby = InProcessDaemon(daemon_config(data, tmp_path))
        try:
            wait_for(lambda: standby.readyz()[1].get("role") == "standby", 5, "standby role")
            assert standby.readyz()[0] == 503
            reply = standby.post("/resync", token=TOKEN)
            assert reply.status_code == 503
            assert reply.json()["status"] == "standby"
            assert metric(standby.metrics(), "orgsync_leader") == 0.0
        finally:
            assert standby.stop() == 0
