"""Crash safety: the receiver as a real process, killed with SIGKILL mid-burst, loses no
acknowledged delivery (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, select

from receiver.cellect.models import StatusWebhook
from receiver.storage.deliveries import canonical_digest
from receiver.storage.tables import ScheduleEntryRecord, WebhookDelivery
from receiver.web.app import WEBHOOK_PATH
from tests.support.product import Product, writer_processes
from tests.support.served_receiver import SECRET, stamp
from tests.support.stack import until

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 5
BURST = 240
KILL_AFTER = (1, 20, 45, 80, 120)  # acknowledgements seen before the kill, per round


# The process runs on the wall clock, and its retention job prunes entries older than
# 90 days: the deliveries are about the coming hours.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _delivery(round_: int, n: int) -> bytes:
    """Distinct content per round and delivery: its own site and slots."""
    site = 1 + round_ * 1000 + n // 4
    start = BASE + timedelta(minutes=15 * (n % 4))
    schedule = [{"start": stamp(start), "end": stamp(start + timedelta(minutes=15)),
                 "status": 1 + n % 3}]  # fmt: skip
    return json.dumps({"siteId": site, "schedule": schedule}).encode()


async def _burst(receiver: Product, round_: int) -> list[bytes]:
    """Send BURST deliveries at once, SIGKILL the receiver mid-way; the acknowledged bodies."""
    acknowledged: list[bytes] = []
    killed = asyncio.Event()

    async def send(http: httpx.AsyncClient, content: bytes) -> None:
        try:
            response = await http.post(WEBHOOK_PATH, content=content, params={"token": SECRET})
        except httpx.TransportError:
            return
        if response.is_success:
            acknowledged.append(content)  # even if it arrives just after the kill: it was sent
            if len(acknowledged) >= KILL_AFTER[round_] and not killed.is_set():
                killed.set()
                receiver.kill()

    limits = httpx.Limits(max_connections=48)
    async with httpx.AsyncClient(base_url=receiver.url, limits=limits, timeout=20) as http:
        await asyncio.gather(*(send(http, _delivery(round_, n)) for n in range(BURST)))
    if not killed.is_set():
        receiver.kill()
    return acknowledged


def _missing(database_url: str, acknowledged: list[bytes]) -> list[Any]:
    """Acknowledged deliveries whose raw row or entries are not in the database."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as session:
            digests = set(session.exec(select(WebhookDelivery.digest)).all())
            spans = set(
                session.exec(
                    select(
                        ScheduleEntryRecord.site_id,
                        ScheduleEntryRecord.start_at,
                        ScheduleEntryRecord.end_at,
                    )
                ).all()
            )
    finally:
        engine.dispose()
    missing: list[Any] = []
    for content in acknowledged:
        webhook = StatusWebhook.model_validate_json(content)
        if canonical_digest(webhook) not in digests:
            missing.append(("delivery", content))
        for e in webhook.schedule:
            if (webhook.site_id, e.start, e.end) not in spans:
                missing.append(("entry", content))
    return missing


async def test_no_acknowledged_delivery_is_lost_to_kill_9(
    database_url: str, tmp_path: Path
) -> None:
    """Five rounds of burst + SIGKILL + restart: every 2xx'd delivery is stored and applied."""
    receiver = Product(tmp_path, CELLECT_DATABASE_URL=database_url, CELLECT_WEBHOOK_SECRET=SECRET)
    try:
        await receiver.start()
        assert len(writer_processes(receiver.pid)) == 1  # the check below can fail
        for round_ in range(ROUNDS):
            acknowledged = await _burst(receiver, round_)
            assert len(acknowledged) >= KILL_AFTER[round_]
            # Its writer process does not outlive it (it sees its socket close).
            killed = receiver.ended[-1]
            await until(
                lambda pid=killed: not writer_processes(pid), within=30, what="the writer to exit"
            )
            await receiver.start()
            assert _missing(database_url, acknowledged) == []
            async with httpx.AsyncClient(base_url=receiver.url) as http:
                again = await http.post(
                    WEBHOOK_PATH, content=acknowledged[-1], params={"token": SECRET}
                )
            assert again.status_code == 200
            assert again.json()["duplicate"] is True
    finally:
        receiver.stop()
