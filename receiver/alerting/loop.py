"""The alert loop: judge the fleet, flush the notifications due, sleep, again.

One cycle asks for the fleet's view, has the engine evaluate it (`evaluate_view`) and
write what is due into the outbox (`flush`), both in a worker thread (they touch the
database). Then it sleeps until the engine's tick (`TICK_S` of the clock: its flush
assumes a cycle at least this often), the next group due, a `wake()` (a webhook
reported a failure) or the stop, whichever comes first.

A burst of failures wakes the loop again at once, so a woken cycle first lets at least
`min_gap_s` and four times the last cycle's real duration pass (never more than a tick
of the clock, however fast it runs): alerting then takes little CPU from webhook ingest
in a storm of failures, and a new failure still fires its alert within a second or two.

`cycles_started` / `cycles_done` are a barrier: read `cycles_started`, `wake()`, then
wait until `cycles_done` exceeds it — the fleet as it was at the wake has been judged
and flushed. `ok()` tells /readyz whether alerting works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio.to_thread

from receiver.alerting.engine import AlertEngine
from receiver.alerting.model import FleetView
from receiver.coordination.errors import LeaseLost
from receiver.runtime import waiting

log = logging.getLogger(__name__)

FAILED_CYCLES_NOT_OK = 3  # cycles failed in a row before /readyz says alerting is down


class AlertLoop:
    """Runs `engine` over `view()` until stopped; see the module docstring."""

    def __init__(
        self,
        engine: AlertEngine,
        view: Callable[[], Awaitable[FleetView]],
        *,
        min_gap_s: float,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine, self.view, self.min_gap_s = engine, view, min_gap_s
        # One of several replicas: only the holder of the `alerts` lease evaluates and
        # notifies; the others still take the view (it keeps their exported outlook
        # current) and stay ready to lead.
        self.leads = leads
        self.clock = engine.clock
        self.cycles_started = self.cycles_done = 0
        self._wake = asyncio.Event()
        # The last cycle that completed: its start on the clock, and in real time.
        self._done_at, self._done_real = self.clock.now(), time.monotonic()
        self._failed = 0

    def wake(self) -> None:
        """Judge the fleet now rather than at the next tick."""
        self._wake.set()

    def ok(self) -> bool:
        """Not three cycles failed in a row, and a cycle completed within the last three
        ticks — of the clock and of real time alike, so that neither a clock stepped
        forward nor a frozen one looks like a stall."""
        if self._failed >= FAILED_CYCLES_NOT_OK:
            return False
        limit = 3 * self.engine.tick_s
        age = (self.clock.now() - self._done_at).total_seconds()
        return age <= limit or time.monotonic() - self._done_real <= limit

    async def cycle(self) -> None:
        """One evaluation and flush; a failure is logged and counted, never raised."""
        self.cycles_started += 1
        number, started = self.cycles_started, self.clock.now()
        try:
            view = await self.view()
            if self.leads():
                await anyio.to_thread.run_sync(self.engine.evaluate_view, view)
                await anyio.to_thread.run_sync(self.engine.flush)
            self._done_at, self._done_real = started, time.monotonic()
            self._failed = 0
        except LeaseLost as exc:  # another replica leads now: not a failure of alerting
            log.info("alert cycle dropped: %s", exc)
            self._done_at, self._done_real = started, time.monotonic()
            self._failed = 0
        except Exception:  # a bad cycle (database down) must not end alerting
            self._failed += 1
            log.exception("alert cycle failed; retrying")
        self.cycles_done = number

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before the cycle and timed from its start, so a webhook or a clock
            # jump during the cycle brings the next one at once instead of a tick later.
            self._wake.clear()
            started, began = self.clock.now(), time.monotonic()
            await self.cycle()
            spent = time.monotonic() - began
            tick = started + timedelta(seconds=self.engine.tick_s)
            # The breather is real time, but never outlasts a tick of the clock: under a
            # fast clock (the emulator's demo and tests) a tick is milliseconds, and a
            # real-time pause of four slow cycles would be emulated hours without a look.
            gap = max(4 * spent, self.min_gap_s)
            await waiting.until(self.clock, tick, stop, real_s=gap)
            wake = tick if self.engine.next_due is None else min(tick, self.engine.next_due)
            await waiting.until(self.clock, wake, stop, self._wake)
