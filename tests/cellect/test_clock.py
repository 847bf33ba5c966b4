"""The injectable clock's sleeps: woken by an advance, and always cancellable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from receiver.cellect.clock import Clock
from receiver.runtime import waiting

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
pytestmark = pytest.mark.anyio


async def test_an_advance_wakes_a_sleeper_on_the_frozen_clock() -> None:
    clock = Clock.frozen(T0)
    task = asyncio.create_task(clock.sleep_until(T0 + timedelta(minutes=5)))
    await asyncio.sleep(0)
    clock.advance(299)
    await asyncio.sleep(0.05)
    assert not task.done()
    clock.advance(1)
    await asyncio.wait_for(task, timeout=2)


async def test_a_cancel_that_meets_an_advance_still_ends_the_sleep() -> None:
    """The clock moves (waking the sleeper) and the sleeper is cancelled in the same loop
    step: it must end cancelled, not sleep on. (On asyncio.wait_for this was swallowed,
    and a loop waiting for its cancelled waiters hung: the alert loop stopped judging.)"""
    clock = Clock.frozen(T0)
    for _ in range(20):
        task = asyncio.create_task(clock.sleep_until(T0 + timedelta(days=1)))
        await asyncio.sleep(0)
        clock.advance(1)  # sets the sleeper's event, through the loop
        await asyncio.sleep(0)  # the event is set; the sleeper has not run yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=2)


async def test_waiting_until_returns_on_the_first_of_moment_stop_and_wake() -> None:
    clock = Clock.frozen(T0)
    stop, wake = asyncio.Event(), asyncio.Event()
    waiter = asyncio.create_task(waiting.until(clock, T0 + timedelta(hours=1), stop, wake))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    wake.set()
    await asyncio.wait_for(waiter, timeout=2)
    waiter = asyncio.create_task(waiting.until(clock, T0 + timedelta(hours=1), stop))
    await asyncio.sleep(0)
    clock.advance(3600)
    await asyncio.wait_for(waiter, timeout=2)
    waiter = asyncio.create_task(waiting.until(clock, None, stop, real_s=60))
    stop.set()
    await asyncio.wait_for(waiter, timeout=2)
