"""The alert loop's rhythm under a fast clock (the emulator's demo and the chaos soak).

Between cycles the loop takes a breather of real time (four times the last cycle's own
duration) so that a storm of failures leaves CPU to webhook ingest; it must never outlast
a tick of the clock. Under a clock 1,000× real time, a real-time breather after a slow
cycle was minutes of emulated time without a look: a failure learned meanwhile alerted
late, or fired and resolved unseen (found by the chaos soak).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from datetime import datetime

import pytest
from sqlalchemy import Engine

from receiver.alerting.engine import AlertEngine
from receiver.alerting.loop import AlertLoop
from receiver.alerting.model import FleetView
from receiver.cellect.clock import Clock
from receiver.settings import Settings

pytestmark = pytest.mark.anyio

SPEED = 1000.0
SLOW_VIEW_S = 0.1  # real seconds a cycle's view takes (a database under load): 100 clock s


async def test_a_slow_cycle_is_followed_within_a_tick_of_a_fast_clock(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """After a cycle of 0.1 s real (100 s of the clock), the next one starts at once: the
    clock's 5 s tick has long passed. The old real-time breather (4 × 0.1 s) left 400 s
    of the clock between cycles."""
    engine = AlertEngine(clock, settings, store, route=lambda severity: [])
    looked: list[tuple[datetime, datetime]] = []  # each view: entered, left (the clock)

    async def view() -> FleetView:
        entered = clock.now()
        await asyncio.sleep(SLOW_VIEW_S)  # the view's own cost, not the test's pacing
        looked.append((entered, clock.now()))
        return FleetView(sites=())

    loop = AlertLoop(engine, view, min_gap_s=0.0)
    clock.set_speed(SPEED)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        for _ in range(200):  # bounded: 6 cycles take about a second here
            if len(looked) >= 6:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert len(looked) >= 6, looked
    # From one view's end to the next view's start: the cycle's evaluate and flush (a few
    # ms of real time) and the breather. Median, so one scheduling hiccup cannot decide.
    pauses = [(nxt[0] - cur[1]).total_seconds() for cur, nxt in itertools.pairwise(looked)]
    assert statistics.median(pauses) < 2 * SLOW_VIEW_S * SPEED, pauses
