"""The demo trader through the real emulator API, with webhooks out to a loopback sink."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.emulator.trader import DemoTrader
from tests.support.sinks import HttpSink

NOW = datetime(2030, 6, 1, 9, 52, 10, tzinfo=UTC)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emulator = Emulator(sites=3, seed=5, clock=Clock.frozen(NOW), transfer_delay_s=30.0)
    yield emulator
    await emulator.sender.aclose()


@pytest.mark.anyio
async def test_trader_schedules_are_stored_executed_and_reported(emulator: Emulator) -> None:
    """Half a day of trading: every post is accepted, entries implement, revisions overwrite."""
    clock = emulator.clock
    transport = httpx.ASGITransport(app=create_emulator_app(emulator))
    with HttpSink() as sink:
        emulator.subscribe(sink.url("/hook?token=t0k"))
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
            trader = DemoTrader(
                http=http,
                refresh_token=emulator.issue_refresh_token(),
                clock=clock,
                seed=5,
                replace_rate=0.3,
            )
            for _ in range(72):  # 12 h in 10-minute steps
                await trader.step()
                clock.advance(600)
                emulator.sync()
                await emulator.sender.deliver_due()
    assert trader.posts
    assert all(post.accepted for post in trader.posts), [
        p.status_code for p in trader.posts if not p.accepted
    ]
    assert any(post.replacement for post in trader.posts)
    assert trader.token_requests >= 2
    statuses = Counter(
        entry["status"] for request in sink.accepted for entry in request.json()["schedule"]
    )
    assert statuses[1] > 0
    assert statuses[2] > 0
    assert statuses[5] > 0
    assert statuses[3] == 0
    own = {site for site, spec in emulator.specs.items() if spec.partner_id == 1}
    assert {request.json()["siteId"] for request in sink.accepted} == own
    assert emulator.sender.pending == 0
    assert "t0k" not in repr(emulator.sender.attempts)


@pytest.mark.anyio
async def test_trader_keeps_planning_a_site_whose_box_went_offline(emulator: Emulator) -> None:
    """A site missing from the portfolio (box offline) is still planned; its entries fail."""
    clock = emulator.clock
    transport = httpx.ASGITransport(app=create_emulator_app(emulator))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        trader = DemoTrader(
            http=http, refresh_token=emulator.issue_refresh_token(), clock=clock, seed=5
        )
        await trader.step()
        emulator.box(1).set_online(False, now=clock.now())
        for _ in range(72):  # 12 h in 10-minute steps: the plan of site 1 runs low
            clock.advance(600)
            emulator.sync()
            await trader.step()
    later = [p for p in trader.posts if p.site_id == 1 and p.at > trader.posts[0].at]
    assert later
    assert all(p.accepted for p in later)
    failed = [
        e
        for e in emulator.box(1).entries_between(clock.now() - timedelta(hours=12), clock.now())
        if e.status is ImplementationStatus.IMPLEMENTATION_FAILED
    ]
    assert failed
