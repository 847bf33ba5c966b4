"""The monitor app with webhooks only (no refresh token), served on loopback for endpoint tests.

`receiver_app(database_url, **settings)` builds the real app (`create_app`) on a frozen
Clock and a fresh registry, serves it with uvicorn on a free port in the test's event
loop, and yields a `Served` with an httpx client, the metrics and row counts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import func
from sqlmodel import Session, select

from receiver.cellect.clock import Clock
from receiver.service import Monitor
from receiver.settings import Settings
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange, WebhookDelivery
from receiver.web.app import WEBHOOK_PATH, create_app
from tests.support.stack import served

SECRET = "endpoint-test-secret-0001"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
TABLES = (WebhookDelivery, ScheduleEntryRecord, ScheduleStatusChange)


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def entry(slot: int, status: int) -> dict[str, Any]:
    start = START + SLOT * slot
    return {"start": stamp(start), "end": stamp(start + SLOT), "status": status}


def payload(site_id: int = 1, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"siteId": site_id, "schedule": list(entries) or [entry(1, 1)]}


def body(site_id: int = 1, *entries: dict[str, Any]) -> bytes:
    return json.dumps(payload(site_id, *entries)).encode()


BEARER = {"Authorization": f"Bearer {SECRET}"}


@dataclass
class Served:
    app: Any
    url: str
    http: httpx.AsyncClient
    clock: Clock
    registry: CollectorRegistry

    @property
    def monitor(self) -> Monitor:
        monitor: Monitor = self.app.state.monitor
        return monitor

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def outcomes(self, outcome: str) -> float:
        value = self.sample("cellect_webhook_requests_total", outcome=outcome)
        return value or 0.0

    def counts(self) -> tuple[int, ...]:
        """Rows of the delivery, entry and history tables."""
        with Session(self.monitor.database) as session:
            return tuple(
                session.exec(select(func.count()).select_from(table)).one() for table in TABLES
            )

    async def post(
        self, content: bytes, headers: dict[str, str] | None = None, params: Any = None
    ) -> httpx.Response:
        sent = BEARER if headers is None else headers
        return await self.http.post(WEBHOOK_PATH, content=content, headers=sent, params=params)


def receiver_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "webhook_secret": SecretStr(SECRET),
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def receiver_app(database_url: str, **overrides: Any) -> AsyncIterator[Served]:
    """The real app, webhooks only, served on a free loopback port on a frozen clock."""
    clock = Clock.frozen(START)
    registry = CollectorRegistry()
    app = create_app(receiver_settings(database_url, **overrides), clock=clock, registry=registry)
    async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield Served(app, url, http, clock, registry)
