"""The daemon's admin HTTP endpoint (Starlette).

=================  ======  ===============================================================
``/healthz``       open    200 while the process serves requests (liveness)
``/readyz``        open    200 when this process leads and the last run succeeded recently,
                           else 503; only ``{"ready": …}`` without the token, with it also
                           the role, the reason and the last run (id, status, age)
``/metrics``       token   Prometheus exposition of the daemon's own registry; open with
                           ``admin.metrics_public`` (for scrapers that cannot send a token)
``/runs``          token   recent runs from the ledger, the run in progress, the pending one
``/resync``        token   ``POST``: trigger a full resync; 202 ``started`` / ``queued`` /
                           ``coalesced``; ``?wait=1`` answers 200 with the run once it ended
=================  ======  ===============================================================

"token": ``Authorization: Bearer <admin.token>``, compared in constant time; a
missing or wrong token is a 401 JSON answer, and with no token configured those
endpoints are off (403). The token is never logged.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

log = structlog.get_logger("orgsync.admin")

TRIGGER_REFUSED = frozenset({"standby", "stopping"})
"""Ticket statuses that mean the trigger was not taken (answered 503)."""


@dataclass(slots=True)
class Ticket:
    """The answer to a trigger: what happened to it, and the run that will serve it."""

    status: str
    """``started``, ``queued``, ``coalesced`` (taken), or ``standby`` / ``stopping`` (refused)."""
    done: asyncio.Future[dict[str, Any]] | None = None
    """Resolves to the finished run (as in ``/runs``) once the run serving this ends."""


class AdminBackend(Protocol):
    """What the admin app needs from the daemon."""

    def readiness(self) -> Awaitable[tuple[bool, dict[str, Any]]]:
        """(ready?, details)."""
        ...

    def runs_report(self, limit: int) -> Awaitable[dict[str, Any]]:
        """Recent runs, current and pending, JSON-ready."""
        ...

    def trigger(self, kind: str, trigger: str) -> Ticket:
        """Ask for a run of ``kind`` ("full" or "incremental")."""
        ...

    def exposition(self) -> tuple[bytes, str]:
        """(Prometheus exposition body, content type)."""
        ...


def _token_ok(request: Request, token: str | None) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if token is None or scheme.lower() != "bearer" or not given:
        return False
    # Header text is the raw bytes decoded as latin-1: back to those bytes, so a
    # UTF-8 token matches and non-ASCII input is just a wrong token.
    return hmac.compare_digest(given.strip().encode("latin-1"), token.encode())


def _guarded(token: str | None, handler: Callable[[Request], Awaitable[Response]]
             ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if token is None:
            return JSONResponse({"error": "forbidden",
                                 "detail": "no admin token is configured (admin.token)"},
                                status_code=403)
        if not _token_ok(request, token):
            log.warning("admin.unauthorized", path=request.url.path,
                        client=request.client.host if request.client else None)
            return JSONResponse({"error": "unauthorized",
                                 "detail": "send Authorization: Bearer <admin token>"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return endpoint


def build_admin_app(backend: AdminBackend, *, token: str | None, metrics_public: bool = False,
                    wait_timeout: float = 3600.0) -> Starlette:
    """The admin ASGI app over ``backend``; ``token`` guards ``/runs``, ``/resync``,
    ``/metrics`` (unless ``metrics_public``) and the details of ``/readyz``."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready, details = await backend.readiness()
        body = {"ready": ready, **details} if _token_ok(request, token) else {"ready": ready}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_request: Request) -> Response:
        body, content_type = backend.exposition()
        return Response(body, media_type=content_type)

    async def runs(request: Request) -> Response:
        try:
            limit = max(1, min(200, int(request.query_params.get("limit", "20"))))
        except ValueError:
            return JSONResponse({"error": "bad_request", "detail": "limit must be an integer"},
                                status_code=400)
        return JSONResponse(await backend.runs_report(limit))

    async def resync(request: Request) -> Response:
        ticket = backend.trigger("full", "http")
        log.info("admin.resync", status=ticket.status)
        if ticket.status in TRIGGER_REFUSED or ticket.done is None:
            return JSONResponse({"error": "unavailable", "status": ticket.status,
                                 "detail": "this replica is not running syncs"
                                 if ticket.status == "standby" else "the daemon is stopping"},
                                status_code=503)
        if request.query_params.get("wait", "").lower() not in ("1", "true", "yes"):
            return JSONResponse({"status": ticket.status}, status_code=202)
        try:
            run = await asyncio.wait_for(asyncio.shield(ticket.done), wait_timeout)
        except TimeoutError:
            return JSONResponse({"status": ticket.status, "detail": "still running"},
                                status_code=202)
        except Exception as exc:  # the daemon stopped before or during the run
            return JSONResponse({"error": "unavailable", "status": "interrupted",
                                 "detail": str(exc)}, status_code=503)
        return JSONResponse({"status": ticket.status, "run": run})

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return PlainTextResponse("not found", status_code=404)

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics if metrics_public else _guarded(token, metrics)),
        Route("/runs", _guarded(token, runs)),
        Route("/resync", _guarded(token, resync), methods=["POST"]),
    ], exception_handlers={404: not_found})
