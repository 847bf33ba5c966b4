"""`create_app(settings, …)` → the monitor's Starlette app.

Routes: `POST /webhooks/time-series`, `GET /metrics`, `GET /healthz` (alive),
`GET /readyz` (database reachable, no poller overdue; and what this replica holds),
`/api/silences`, the read API `/api/v1/…` (receiver.web.read_api; `/api/v1/replicas`:
receiver.web.replicas) — everything under /api/ behind the admin token
(receiver.web.operator_api) — and the operator console's pages (receiver.web.console:
`/`, `/login`, …) behind a session the admin token buys. The lifespan owns
the Monitor: it starts it, runs its background work in a task, and on shutdown (SIGTERM
included, through uvicorn) stops the work and closes the HTTP client and the engine in
reverse order. Nothing is module-level, so a test can build two apps side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from receiver.cellect.clock import Clock
from receiver.metrics.registry import Metrics, metrics_endpoint
from receiver.service import Monitor
from receiver.settings import Settings
from receiver.web import middleware
from receiver.web.console import console_routes
from receiver.web.health import readiness
from receiver.web.operator_api import AdminCredential
from receiver.web.read_api import read_routes
from receiver.web.replicas import holding_json, replica_routes
from receiver.web.silences import silence_routes

WEBHOOK_PATH = "/webhooks/time-series"


def _monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


class WebhookEndpoint:
    """The monitor's webhook receiver (an ASGI app, `receiver.ingest.endpoint`), started."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        receiver = self.monitor.receiver
        if receiver is None:
            starting = JSONResponse({"error": "starting", "message": "not ready yet"}, 503)
            await starting(scope, receive, send)
            return
        await receiver(scope, receive, send)


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = await readiness(_monitor(request))
    body = {
        "status": "ready" if state.ready else "not_ready",
        "database": state.database,
        "webhook_writer": state.webhook_writer,
        "alerting": state.alerting,
        "pollers": {
            p.name: {
                "last_success": p.last_success.isoformat() if p.last_success else None,
                "overdue": p.overdue,
                "last_error": p.last_error,
            }
            for p in state.pollers
        },
        # What this replica holds; informative only (any replica takes any webhook).
        "replica": holding_json(state.replica),
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """Build the app; `transport` lets tests and the demo point the client at the emulator."""
    clock = clock or Clock()
    metrics = Metrics(
        registry or CollectorRegistry(), now=clock.timestamp, stale_after_s=settings.stale_after_s
    )
    monitor = Monitor(settings, clock=clock, metrics=metrics, transport=transport)
    admin = AdminCredential()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await monitor.start()
        await anyio.to_thread.run_sync(admin.load, settings, monitor.database, clock)
        stop = asyncio.Event()
        background = asyncio.create_task(monitor.run(stop))
        try:
            yield
        finally:
            stop.set()
            await background
            await monitor.close()

    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, WebhookEndpoint(monitor), methods=["POST"]),
            Route("/metrics", metrics_endpoint(metrics), methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            # Full paths (/api/silences); a change has the alert engine flush at once.
            *silence_routes(monitor.database, clock, on_change=monitor.alert_engine.mark_dirty),
            # /api/v1/…: the history, read only (receiver.web.read_api, docs/api.md).
            *read_routes(monitor.database, clock),
            *replica_routes(monitor),  # /api/v1/replicas: who runs, who holds what
            # The operator console: /, /sites/{id}, /alerts, /webhooks, /service, /login.
            *console_routes(monitor, admin),
        ],
        middleware=middleware(settings, admin),
        lifespan=lifespan,
    )
    app.state.monitor = monitor
    app.state.admin = admin  # its login_codes: the demo prints a one-time sign-in link
    return app
