"""The one injectable clock every time rule reads: real, frozen, advanced, or sped up.

The emulator, its box, its token expiry and validation windows, and (in a demo or a
test) the monitor itself all read the same `Clock`, so an hour can pass in a second
and a test can move time forward without sleeping. `sleep_until` wakes early when the
clock is advanced or its speed changes, from any thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

# A waiter re-reads the clock at least this often (real seconds), so a speed change
# made without notifying still takes effect promptly.
_MAX_REAL_WAIT = 0.5


class Clock:
    """Emulated time = anchor + (real elapsed since anchoring) × speed; speed 0 is frozen."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._lock = threading.Lock()
        self._anchor_emulated = (start or datetime.now(UTC)).astimezone(UTC)
        self._anchor_real = time.monotonic()
        self._speed = float(speed)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @classmethod
    def frozen(cls, at: datetime) -> Clock:
        return cls(start=at, speed=0.0)

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._anchor_real) * self._speed
            return self._anchor_emulated + timedelta(seconds=elapsed)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def _reanchor(self) -> None:
        real = time.monotonic()
        self._anchor_emulated += timedelta(seconds=(real - self._anchor_real) * self._speed)
        self._anchor_real = real

    def advance(self, seconds: float) -> datetime:
        """Jump forward (never back) by `seconds` of emulated time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._reanchor()
            self._anchor_emulated += timedelta(seconds=seconds)
        self._notify()
        return self.now()

    def set_speed(self, speed: float) -> None:
        """Run at `speed` emulated seconds per real second from now on (0 freezes)."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            self._reanchor()
            self._speed = float(speed)
        self._notify()

    def follow(self, at: datetime, speed: float, *, backwards: bool = False) -> None:
        """Read `at` now and run at `speed` from here (another process's clock, read a
        moment ago). Not backwards unless told: a reading a little behind this clock (it
        was read a moment ago) keeps this clock's now."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            self._reanchor()
            at = at.astimezone(UTC)
            self._anchor_emulated = at if backwards else max(self._anchor_emulated, at)
            self._speed = float(speed)
        self._notify()

    def _notify(self) -> None:
        for loop, event in list(self._waiters):
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def sleep_until(self, target: datetime) -> None:
        """Return once the clock reads `target` or later."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiter = (loop, event)
        self._waiters.add(waiter)
        try:
            while (remaining := (target - self.now()).total_seconds()) > 0:
                real = remaining / self._speed if self._speed > 0 else _MAX_REAL_WAIT
                event.clear()
                # A timer sets the same event, rather than asyncio.wait_for: wait_for
                # (Python 3.11) can swallow a cancellation that meets the event being
                # set, and this loop would then sleep on, uncancellable.
                timer = loop.call_later(min(real, _MAX_REAL_WAIT), event.set)
                try:
                    await event.wait()
                finally:
                    timer.cancel()
        finally:
            self._waiters.discard(waiter)

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of emulated time."""
        await self.sleep_until(self.now() + timedelta(seconds=seconds))
