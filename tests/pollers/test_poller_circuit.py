"""Poll rounds against the client's circuit: a round that meets an outage stops at the
circuit, a round against an open circuit fails fast with one log line and no request,
and the pollers recover once a probe finds the vendor back. Real pollers, client,
fleet and SQLite database against the real emulator; what went out is counted at the
emulator's door."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from receiver.cellect.clock import Clock
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.emulator.faults import FaultRule
from receiver.fleet.picture import Fleet
from receiver.metrics.registry import Metrics
from receiver.pollers.context import PollContext
from receiver.pollers.events import EventsPoller
from receiver.pollers.portfolio import PortfolioPoller
from receiver.storage.engine import create_engine_for, upgrade
from receiver.vendor.client import CellectClient, CircuitState
from tests.support.door import Door

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SITES = 30
COOLDOWN_S = 30.0


@dataclass
class Rig:
    clock: Clock
    emulator: Emulator
    door: Door
    client: CellectClient
    portfolio: PortfolioPoller
    events: EventsPoller

    def outage(self) -> None:
        self.emulator.faults.set("*", FaultRule(error_rate=1.0))

    def recovery(self) -> None:
        self.emulator.faults.clear()


async def no_backoff(seconds: float) -> None:
    """The client's backoff sleep (the outer boundary of time): it returns at once."""


@pytest.fixture
async def rig(sqlite_url: str) -> AsyncIterator[Rig]:
    """Thirty sites known from a first portfolio poll, and an events poller on them."""
    clock = Clock.frozen(START)
    emulator = Emulator(sites=SITES, seed=7, clock=clock)
    door = Door(create_emulator_app(emulator))
    engine = create_engine_for(sqlite_url)
    upgrade(engine)
    fleet = Fleet(metrics=Metrics(CollectorRegistry()), clock=clock, in_progress_stuck_s=300)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door)) as http:
        client = CellectClient(
            http,
            api_url="http://emulator",
            token_url="http://emulator",
            refresh_token=SecretStr(emulator.issue_refresh_token()),
            clock=clock,
            sleep=no_backoff,
            rng=random.Random(1),
            circuit_cooldown_s=COOLDOWN_S,
        )
        context = PollContext(client, engine, fleet)
        portfolio = PortfolioPoller(context, clock=clock, interval_s=60)
        assert await portfolio.run_once()
        events = EventsPoller(context, clock=clock, interval_s=60)
        door.clear()
        yield Rig(clock, emulator, door, client, portfolio, events)
    engine.dispose()


def our_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("receiver")]


async def test_a_round_that_meets_an_outage_stops_at_the_circuit(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Thirty sites, all failing: five requests go out (not thirty sites × five attempts),
    and the round logs two lines — the circuit opening and the poller failing."""
    caplog.set_level(logging.INFO, logger="receiver")
    rig.outage()
    assert await rig.events.run_once() is False
    assert rig.door.count() == 5
    assert rig.client.circuit_state is CircuitState.OPEN
    messages = [r.getMessage() for r in our_records(caplog)]
    assert len(messages) == 2, messages
    assert "circuit open" in messages[0]
    assert "events poll failing" in messages[1]


async def test_a_round_against_an_open_circuit_fails_fast_and_logs_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """With the circuit open, a round sends nothing and logs one line (the poller's
    failure, naming the open circuit), not one per site; the next round logs nothing."""
    rig.outage()
    assert await rig.portfolio.run_once() is False  # its one call's five attempts open it
    assert rig.client.circuit_state is CircuitState.OPEN
    rig.door.clear()
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="receiver")
    assert await rig.events.run_once() is False
    assert rig.door.seen == []
    [record] = our_records(caplog)
    assert record.levelno == logging.WARNING
    assert "events poll failing: CircuitOpen" in record.getMessage()
    caplog.clear()
    assert await rig.events.run_once() is False
    assert rig.door.seen == []
    assert our_records(caplog) == []


async def test_pollers_recover_once_a_probe_finds_the_vendor_back(rig: Rig) -> None:
    """After the cool-down with the vendor back, the probe closes the circuit and, within
    two rounds, every site is fetched again."""
    rig.outage()
    assert await rig.events.run_once() is False
    rig.recovery()
    rig.clock.advance(COOLDOWN_S)
    rig.door.clear()
    recovered = await rig.events.run_once() or await rig.events.run_once()
    assert recovered
    assert rig.client.circuit_state is CircuitState.CLOSED
    assert rig.door.count("events", 200) >= SITES
    assert rig.door.count("events", 500) == 0
