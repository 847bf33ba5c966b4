"""Helpers of the client tests: the doubles at the outer boundaries and small builders.

The only doubles are at the outer boundary of time (the client's sleep, which records
its delays and returns at once, or waits them out on the emulated clock), of the
network (`FlakyNetwork`, which fails a given number of requests with a transport error
before handing them on); what actually reached the emulator is counted at its front
door (`tests.support.door.Door`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from receiver.cellect.clock import Clock
from receiver.cellect.models import ScheduleEntry
from receiver.cellect.validation import SiteRatings
from receiver.emulator.cloud import Emulator

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BASE_URL = "http://emulator"
SITES = 3


class Control:
    """The emulator's control API (`/_emulator`), on a client of its own."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.http.request(method, "/_emulator" + path, json=body)
        response.raise_for_status()
        return response.json()

    async def fault(self, endpoint: str = "*", **rule: Any) -> None:
        """Make `endpoint` (a fault endpoint name, or "*") misbehave."""
        await self._call("POST", "/faults", {"endpoint": endpoint, **rule})

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def expire_access_tokens(self) -> None:
        await self._call("POST", "/faults", {"expire_tokens": True})

    async def revoke_refresh_tokens(self) -> None:
        for token in await self._call("GET", "/refresh-tokens"):
            await self._call("DELETE", f"/refresh-tokens/{token['identifier']}")

    def heal_after(self, sleeps: int) -> Callable[[int], Awaitable[None]]:
        """A Recorder sleep hook that clears every fault after `sleeps` backoff sleeps."""

        async def heal(count: int) -> None:
            if count == sleeps:
                await self.clear_faults()

        return heal


@dataclass
class Recorder:
    """What the client did: each HTTP attempt (on_request) and each sleep. With `clock`
    set, a sleep waits that long on the (emulated) clock instead of returning at once."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], Awaitable[None]] | None = None
    clock: Clock | None = None
    sleeping: int = 0  # sleeps in progress (only with `clock`)

    def on_request(self, endpoint: str, code: str, seconds: float) -> None:
        assert seconds >= 0
        self.requests.append((endpoint, code))

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            await self.on_sleep(len(self.sleeps))
        if self.clock is not None:
            self.sleeping += 1
            try:
                await self.clock.sleep(seconds)
            finally:
                self.sleeping -= 1

    def count(self, endpoint: str) -> int:
        return sum(1 for name, _ in self.requests if name == endpoint)


class FlakyNetwork(httpx.AsyncBaseTransport):
    """The network between client and emulator, failing the next `failures` requests."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failures = 0
        self.error: type[httpx.TransportError] = httpx.ReadTimeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures > 0:
            self.failures -= 1
            raise self.error("injected network failure", request=request)
        return await self.inner.handle_async_request(request)


def ratings_of(emulator: Emulator, site_id: int) -> SiteRatings:
    spec = emulator.specs[site_id]
    return SiteRatings(spec.rated_charge_kw, spec.rated_discharge_kw)


def schedule(clock: Clock, *, count: int = 4, power_kw: float = 10.0) -> list[ScheduleEntry]:
    """`count` 15-minute entries from 10 minutes ahead, alternating charge and discharge."""
    first = clock.now() + timedelta(minutes=10)
    return [
        ScheduleEntry(
            start_date=first + timedelta(minutes=15 * i),
            end_date=first + timedelta(minutes=15 * (i + 1)),
            ess_power_ac=power_kw if i % 2 else -power_kw,
        )
        for i in range(count)
    ]
