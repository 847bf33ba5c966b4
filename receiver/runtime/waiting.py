"""Waiting, one way for every loop: until a moment of the clock, a stop, or a wake-up.

Every background loop of the monitor and the emulator sleeps between rounds and must
leave at once when it is stopped. Sleeps are on the injected `Clock` (a sped-up demo or
a frozen test clock does not wait in real time) unless they bound real work (a pause
between two alert cycles, the emulator's idle poll), which are in real seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from receiver.cellect.clock import Clock


async def first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of `awaitables` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Cancelled, not awaited: a waiter that finishes late must never hold up the
        # loop that asked (each ends at its next step).
        for task in tasks:
            task.cancel()


async def until(
    clock: Clock,
    moment: datetime | None,
    stop: asyncio.Event,
    *wake: asyncio.Event,
    real_s: float | None = None,
) -> None:
    """Sleep until `moment` on `clock` (None: no moment), `stop` or any `wake` is set, or
    (given) `real_s` real seconds have passed, whichever comes first."""
    waiters: list[Awaitable[Any]] = [stop.wait(), *(event.wait() for event in wake)]
    if moment is not None:
        waiters.append(clock.sleep_until(moment))
    if real_s is not None:
        waiters.append(asyncio.sleep(real_s))
    await first(*waiters)


async def pause(seconds: float, stop: asyncio.Event) -> None:
    """Sleep `seconds` of real time, or until `stop` is set."""
    await first(asyncio.sleep(seconds), stop.wait())
