"""A whole cellect-monitor stack for tests: the real monitor app served by uvicorn on a
loopback port, and the real emulator reached through `httpx.ASGITransport`, both in the
test's event loop and on one frozen Clock.

Time moves only when a test says so (`stack.advance(s)`), and waits are bounded polls of
an observable condition (`until`), never sleeps standing in for time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.types import ASGIApp

from receiver.cellect.clock import Clock
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.runtime.serving import Server, bind, server_config, url_of
from receiver.service import Monitor
from receiver.settings import Settings
from receiver.web.app import WEBHOOK_PATH, create_app

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
REFRESH_TOKEN = "test-refresh-token-0001"
WEBHOOK_SECRET = "test-webhook-secret-0001"
ADMIN_TOKEN = "test-admin-token-0001-stack"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # headers for the operator API (/api/)


async def until(condition: Callable[[], Any], *, within: float = 10.0, what: str = "") -> Any:
    """Poll `condition` (bounded in real time) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def served(app: ASGIApp, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` as `cellect-monitor run` does (lifespan on, no proxy headers of uvicorn's
    own) on a free loopback port; yields its base URL."""
    sock = bind(host, 0)
    url = url_of(sock, host)
    server = Server(server_config(app, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(server.listening.wait(), timeout=30)
        if not server.started:
            raise RuntimeError("the app did not start")
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@dataclass
class Stack:
    clock: Clock
    emulator: Emulator
    emulator_app: Starlette
    app: Starlette
    url: str
    registry: CollectorRegistry
    settings: Settings
    serving: AsyncExitStack = field(default_factory=AsyncExitStack)
    subscribed: bool = True

    async def restart(self, down_s: float = 0.0) -> None:
        """Stop the monitor as SIGTERM does (lifespan shutdown) and start a new one — a
        new app, a fresh registry — on the same database, clock and emulator, `down_s`
        emulated seconds later (the boxes act meanwhile; their webhooks find no one)."""
        await self.serving.aclose()
        if down_s:
            self.clock.advance(down_s)
            self.emulator.sync()
        self.registry = CollectorRegistry()
        self.app = _monitor_app(self.settings, self.clock, self.registry, self.emulator_app)
        self.serving = AsyncExitStack()
        self.url = await self.serving.enter_async_context(served(self.app))
        if self.subscribed:
            self.emulator.subscriptions.clear()
            self.emulator.subscribe(f"{self.url}{WEBHOOK_PATH}?token={WEBHOOK_SECRET}")

    @property
    def monitor(self) -> Monitor:
        monitor: Monitor = self.app.state.monitor
        return monitor

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    async def advance(self, seconds: float) -> None:
        """Move emulated time; the boxes act and their webhooks are delivered."""
        self.clock.advance(seconds)
        self.emulator.sync()
        await self.emulator.sender.deliver_due()

    def emulator_client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.emulator_app)
        return httpx.AsyncClient(transport=transport, base_url="http://emulator")


def stack_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_url": "http://emulator",
        "token_url": "http://emulator",
        "refresh_token": SecretStr(REFRESH_TOKEN),
        "webhook_secret": SecretStr(WEBHOOK_SECRET),
        "admin_token": SecretStr(ADMIN_TOKEN),
        "poll_jitter": 0.0,
        # These tests wake the alert loop many times a run on a fast emulated clock; the
        # real-time spacing that protects ingest in a storm would only make them wait.
        # The webhook endpoint tests (served_receiver) keep the default.
        "alert_min_gap_s": 0.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def monitor_stack(
    database_url: str,
    *,
    sites: int = 3,
    seed: int = 1,
    subscribe: bool = True,
    start: datetime = START,
    offline: Sequence[int] = (),
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """The monitor polling the emulator and receiving its webhooks, on a clock frozen at
    `start`; the boxes of `offline` are cut off before the monitor starts."""
    clock = Clock.frozen(start)
    emulator = Emulator(sites=sites, seed=seed, clock=clock)
    for site_id in offline:
        emulator.boxes[site_id].set_online(False, now=clock.now())
    emulator.issue_refresh_token(1, token=REFRESH_TOKEN)
    emulator_app = create_emulator_app(emulator)
    settings = stack_settings(database_url, **overrides)
    registry = CollectorRegistry()
    app = _monitor_app(settings, clock, registry, emulator_app)
    serving = AsyncExitStack()
    try:
        url = await serving.enter_async_context(served(app))
        if subscribe:
            emulator.subscribe(f"{url}{WEBHOOK_PATH}?token={WEBHOOK_SECRET}")
        stack = Stack(
            clock, emulator, emulator_app, app, url, registry, settings, serving, subscribe
        )
        try:
            yield stack
        finally:
            await stack.serving.aclose()
    finally:
        await serving.aclose()
        await emulator.sender.aclose()


def _monitor_app(
    settings: Settings, clock: Clock, registry: CollectorRegistry, emulator_app: Starlette
) -> Starlette:
    transport = httpx.ASGITransport(emulator_app)
    return create_app(settings, clock=clock, registry=registry, transport=transport)
