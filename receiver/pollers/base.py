"""The shared poll loop (Home Assistant's DataUpdateCoordinator pattern).

A `Poller` starts `poll()` every `interval_s` (with jitter, so a fleet of monitors does
not hit the vendor in lock-step), on the injected Clock; a round that outlasts the
interval is followed by the next one at once. It keeps `last_success`,
`last_error` and `consecutive_failures`, and logs on *transitions* only: the first
failure at warning, "recovered" at info — a vendor outage gives two log lines, not one
per poll. Setting `stop` ends the loop after the current round.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from receiver.cellect.clock import Clock
from receiver.cellect.errors import CellectError
from receiver.runtime import waiting

log = logging.getLogger(__name__)


class Poller:
    """Base class: subclasses implement `poll()`; `name` labels metrics and logs."""

    name = "poller"

    def __init__(
        self,
        *,
        clock: Clock,
        interval_s: float,
        jitter: float = 0.1,
        rng: random.Random | None = None,
        on_success: Callable[[str, datetime], None] | None = None,
    ) -> None:
        self.clock = clock
        self.interval_s = interval_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._on_success = on_success
        self.last_success: datetime | None = None
        self.last_error: str | None = None
        self.consecutive_failures = 0
        self.rounds = 0  # started
        self.completed = 0  # ended, in success or failure

    async def poll(self) -> None:
        raise NotImplementedError

    def _next_delay(self) -> float:
        spread = self.interval_s * self.jitter
        return max(0.0, self.interval_s + self._rng.uniform(-spread, spread))

    async def run_once(self) -> bool:
        """One round; True when it succeeded. Never raises for vendor or I/O errors."""
        self.rounds += 1
        try:
            await self.poll()
        except (CellectError, OSError) as exc:
            self._failed(exc)
            return False
        except Exception as exc:
            log.exception("%s poll crashed", self.name)
            self._failed(exc)
            return False
        self._succeeded()
        return True

    def _failed(self, exc: BaseException) -> None:
        self.completed += 1
        self.consecutive_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.consecutive_failures == 1:
            log.warning("%s poll failing: %s", self.name, self.last_error)

    def _succeeded(self) -> None:
        self.completed += 1
        if self.consecutive_failures:
            log.info("%s poll recovered after %d failures", self.name, self.consecutive_failures)
        self.consecutive_failures = 0
        self.last_error = None
        self.last_success = self.clock.now()
        if self._on_success is not None:
            self._on_success(self.name, self.last_success)

    @property
    def overdue(self) -> bool:
        """True when no success came for more than three intervals (for /readyz)."""
        if self.last_success is None:
            return self.rounds > 0 and self.consecutive_failures > 0
        age = (self.clock.now() - self.last_success).total_seconds()
        return age > 3 * self.interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; each wait is on the clock, so tests advance it instead."""
        while not stop.is_set():
            # The next round is due one interval after this one *started*, fixed now:
            # a deadline taken only once the sleeper first runs would slip past a clock
            # advance made in between (and rounds would drift by their own duration).
            due = self.clock.now() + timedelta(seconds=self._next_delay())
            await self.run_once()
            await waiting.until(self.clock, due, stop)
