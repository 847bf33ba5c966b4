"""The shared poll loop: interval and jitter on the clock, health bookkeeping, logging on
transitions only, and a prompt, clean stop."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest

from receiver.cellect.clock import Clock
from receiver.pollers.base import Poller
from receiver.vendor.retry import CellectTransportError
from tests.support.stack import until

pytestmark = pytest.mark.anyio
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LOGGER = "receiver.pollers.base"


class Scripted(Poller):
    """A poller whose rounds fail while `failing` is set (a stand-in for the vendor)."""

    name = "scripted"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.failing = False
        self.crash = False
        self.polled_at: list[datetime] = []

    async def poll(self) -> None:
        self.polled_at.append(self.clock.now())
        if self.crash:
            raise RuntimeError("a bug in a poller")
        if self.failing:
            raise CellectTransportError("portfolio", "timeout", 5)


async def settle() -> None:
    """Let every ready callback run (the clock wakes sleepers through the loop)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_rounds_follow_the_interval_on_the_clock() -> None:
    """The first round runs at once, the next only when the clock has moved one interval."""
    clock = Clock.frozen(START)
    poller = Scripted(clock=clock, interval_s=60, jitter=0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await until(lambda: poller.rounds == 1, within=5)
        clock.advance(59)
        await settle()
        assert poller.rounds == 1
        clock.advance(1)
        await until(lambda: poller.rounds == 2, within=5)
        assert poller.polled_at == [START, START + timedelta(seconds=60)]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_jitter_spreads_the_wait_within_its_bounds() -> None:
    """With jitter j the wait is interval × (1 ± j), drawn from the injected rng."""
    clock = Clock.frozen(START)
    poller = Scripted(clock=clock, interval_s=100, jitter=0.5, rng=random.Random(3))
    expected = 100 + random.Random(3).uniform(-50, 50)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await until(lambda: poller.rounds == 1, within=5)
        clock.advance(expected - 0.5)
        await settle()
        assert poller.rounds == 1
        clock.advance(1.0)
        await until(lambda: poller.rounds == 2, within=5)
        assert 50 <= (poller.polled_at[1] - START).total_seconds() <= 150
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_health_bookkeeping_across_failure_and_recovery() -> None:
    """Failures count up and keep the last error; a success resets them and stamps the time."""
    clock = Clock.frozen(START)
    seen: list[tuple[str, datetime]] = []
    poller = Scripted(
        clock=clock, interval_s=60, on_success=lambda name, at: seen.append((name, at))
    )
    assert await poller.run_once() is True
    assert poller.last_success == START
    assert seen == [("scripted", START)]
    poller.failing = True
    clock.advance(60)
    for _ in range(3):
        assert await poller.run_once() is False
    assert poller.consecutive_failures == 3
    assert poller.last_error is not None
    assert "timeout" in poller.last_error
    assert poller.last_success == START
    poller.failing = False
    clock.advance(60)
    assert await poller.run_once() is True
    assert (poller.consecutive_failures, poller.last_error) == (0, None)
    assert poller.last_success == START + timedelta(seconds=120)
    assert len(seen) == 2


async def test_logs_only_on_transitions(caplog: pytest.LogCaptureFixture) -> None:
    """N failures give one warning, the recovery one info line, steady success nothing."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    poller = Scripted(clock=Clock.frozen(START), interval_s=60)
    await poller.run_once()
    poller.failing = True
    for _ in range(7):
        await poller.run_once()
    poller.failing = False
    for _ in range(3):
        await poller.run_once()
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert [level for level, _ in records] == [logging.WARNING, logging.INFO]
    assert "failing" in records[0][1]
    assert "recovered after 7 failures" in records[1][1]


async def test_a_crashing_poll_is_a_failed_round_not_a_dead_loop() -> None:
    """An unexpected exception in poll() counts as a failure and the loop keeps going."""
    clock = Clock.frozen(START)
    poller = Scripted(clock=clock, interval_s=10, jitter=0.0)
    poller.crash = True
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await until(lambda: poller.rounds == 1, within=5)
        assert poller.last_error is not None
        assert "RuntimeError" in poller.last_error
        poller.crash = False
        clock.advance(10)
        await until(lambda: poller.last_success is not None, within=5)
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_stop_ends_run_promptly() -> None:
    """Setting stop ends a loop that is waiting out a long interval, without moving the clock."""
    poller = Scripted(clock=Clock.frozen(START), interval_s=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await until(lambda: poller.rounds == 1, within=5)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert task.done()
    assert task.exception() is None


async def test_overdue_after_three_intervals_without_success() -> None:
    """A poller is overdue (for /readyz) only when three intervals passed with no success."""
    clock = Clock.frozen(START)
    poller = Scripted(clock=clock, interval_s=60)
    assert not poller.overdue  # not yet due
    await poller.run_once()
    poller.failing = True
    clock.advance(180)
    await poller.run_once()
    assert not poller.overdue
    clock.advance(1)
    assert poller.overdue
    poller.failing = False
    await poller.run_once()
    assert not poller.overdue


async def test_failing_from_the_start_is_overdue() -> None:
    """A poller that never succeeded is overdue as soon as a round has failed."""
    poller = Scripted(clock=Clock.frozen(START), interval_s=60)
    poller.failing = True
    await poller.run_once()
    assert poller.overdue
