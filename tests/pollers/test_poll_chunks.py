"""Per-site rounds store what came back in chunks, not all at the end of the round.

At 10,000 sites a round held every parsed answer until one write at its end (memory, and
full garbage collections walking them all); now `PollContext.fetch_each` hands `store`
a chunk whenever `chunk` sites have come back. The real events poller against the real
emulator shows it as transactions; `fetch_each` itself is held to its contract with a
plain fetch function.
"""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import event
from sqlmodel import Session, select

from receiver.cellect.clock import Clock
from receiver.cellect.enums import DowntimeType, EventReason, EventSource
from receiver.cellect.errors import CellectApiError
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.fleet.picture import Fleet
from receiver.metrics.registry import Metrics
from receiver.pollers.context import PollContext
from receiver.pollers.events import EventsPoller
from receiver.pollers.portfolio import PortfolioPoller
from receiver.storage.engine import create_engine_for, upgrade
from receiver.storage.tables import AvailabilityEventRecord
from receiver.vendor.client import CellectClient

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def no_backoff(seconds: float) -> None:
    """The client's backoff sleep: it returns at once."""


async def test_the_events_round_commits_a_transaction_per_chunk(sqlite_url: str) -> None:
    """23 sites, each with an event, chunks of 5: five transactions, and every site's
    events polled and stored."""
    clock = Clock.frozen(START)
    emulator = Emulator(sites=23, seed=3, clock=clock)
    for site_id in range(1, 24):
        emulator.box(site_id).start_outage(
            now=START, downtime_type=DowntimeType.PLANNED, reason=EventReason.MAINTENANCE,
            source=EventSource.ESS, duration_s=3600,
        )  # fmt: skip
    engine = create_engine_for(sqlite_url)
    upgrade(engine)
    fleet = Fleet(metrics=Metrics(CollectorRegistry()), clock=clock, in_progress_stuck_s=300)
    app = create_emulator_app(emulator)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
            client = CellectClient(
                http, api_url="http://emulator", token_url="http://emulator",
                refresh_token=SecretStr(emulator.issue_refresh_token()), clock=clock,
                sleep=no_backoff, rng=random.Random(1),
            )  # fmt: skip
            context = PollContext(client, engine, fleet, concurrency=4, chunk=5)
            assert await PortfolioPoller(context, clock=clock, interval_s=60).run_once()
            commits: list[int] = []
            event.listen(engine, "commit", lambda connection: commits.append(1))
            assert await EventsPoller(context, clock=clock, interval_s=60).run_once()
    finally:
        engine.dispose()
    assert len(commits) == math.ceil(23 / 5)
    with Session(engine) as session:
        stored = session.exec(select(AvailabilityEventRecord.site_id)).all()
    assert sorted(stored) == list(range(1, 24))
    polled = {site.site_id for site in fleet.view().sites if site.availability_at == START}
    assert polled == set(range(1, 24))


async def test_fetch_each_hands_over_full_chunks_one_at_a_time() -> None:
    """Every site once, in chunks of at most `chunk` (only the last smaller), stored one
    at a time; a failed site is reported after the others were stored."""
    context = PollContext(None, None, None, concurrency=4, chunk=7)  # type: ignore[arg-type]
    stored: list[dict[int, int]] = []
    storing = False

    async def fetch(site_id: int) -> int:
        await asyncio.sleep(0)
        if site_id == 13:
            raise CellectApiError("boom", http_status=500)
        return site_id * 10

    async def store(chunk: dict[int, int]) -> None:
        nonlocal storing
        assert not storing, "two chunks stored at once"
        storing = True
        for _ in range(3):  # let the other workers run meanwhile
            await asyncio.sleep(0)
        stored.append(chunk)
        storing = False

    failure = await context.fetch_each(range(1, 31), fetch, store)
    assert isinstance(failure, CellectApiError)
    sizes = [len(chunk) for chunk in stored]
    assert sizes[:-1] == [7] * (len(sizes) - 1), sizes
    assert 0 < sizes[-1] <= 7, sizes
    merged = {site: value for chunk in stored for site, value in chunk.items()}
    assert merged == {site: site * 10 for site in range(1, 31) if site != 13}


async def test_a_failing_store_ends_the_round() -> None:
    """The database refusing a chunk is not swallowed: the round raises it."""
    context = PollContext(None, None, None, concurrency=2, chunk=3)  # type: ignore[arg-type]

    async def fetch(site_id: int) -> int:
        return site_id

    async def store(chunk: dict[int, int]) -> None:
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="database is locked"):
        await context.fetch_each(range(10), fetch, store)
