"""The one gate of a CellectClient to the Cellect API: every HTTP attempt of the client —
every poller's, the token requests' — passes it, so they share one budget.

- **Pause**: an error answer carrying `Retry-After` (a 429, or a 503 that says so)
  pauses *every* request of the client until then, waited out through the injected
  sleep on the injected clock (a demo's fast clock, a test's frozen one). A request
  that would have to wait longer than what is left of its own retry budget
  (CELLECT_RETRY_MAX_S) is not sent: `Throttled`.
- **Circuit**: `receiver.vendor.circuit.CircuitBreaker` judges each attempt; while it is open
  a request is not sent: `CircuitOpen`. A probe's own token request (made inside the
  probe's auth flow) goes out as part of the probe.

Both errors are `RequestNotSent` (part of the client's error tree, receiver.vendor.client):
nothing reached Cellect. Neither is logged per request: the breaker logs its
transitions, the pollers their rounds' failures. Observers learn each event
(`ClientObserver`: metrics, and the fleet's ApiDown picture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from receiver.cellect.clock import Clock
from receiver.cellect.errors import CellectError
from receiver.vendor.circuit import CircuitBreaker, CircuitState, Verdict

Sleep = Callable[[float], Awaitable[None]]
# Waits for one pause, each re-checked after its sleep: a pause extended meanwhile (by
# a request that was already in flight) is waited again, a few times at most.
MAX_PAUSE_WAITS = 8
# Set while a task sends the half-open circuit's probe: its nested token request rides
# along instead of being refused as a second probe.
_IN_PROBE: ContextVar[bool] = ContextVar("cellect_in_probe", default=False)


class RequestNotSent(CellectError):
    """The client held the request back: nothing reached Cellect. `.until`: when that
    may change (None: unknown)."""

    reason = "not_sent"

    def __init__(self, endpoint: str, detail: str, until: datetime | None) -> None:
        self.endpoint, self.until = endpoint, until
        self.code: int | None = None
        self.http_status: int | None = None
        when = f" until {until.isoformat()}" if until is not None else ""
        super().__init__(f"{endpoint}: not sent, {detail}{when}")


class CircuitOpen(RequestNotSent):
    """The circuit is open (or its one probe is out): the API failed too often in a row."""

    reason = "circuit_open"


class Throttled(RequestNotSent):
    """A Retry-After pause of the client outlasts what is left of this call's retry budget."""

    reason = "paused"


class ClientObserver(Protocol):
    """What the client tells about its traffic beyond each attempt (`on_request`)."""

    def api_retry(self, endpoint: str, reason: str) -> None:
        """A call is about to try again after `reason` (RETRY_REASONS of receiver.vendor.retry)."""

    def api_not_sent(self, endpoint: str, reason: str) -> None:
        """A request was held back (`RequestNotSent.reason`)."""

    def api_circuit(self, state: CircuitState) -> None:
        """The circuit changed state."""

    def api_paused(self, until: float, added_s: float) -> None:
        """A Retry-After paused the client until `until` (Unix s), `added_s` longer than before."""


class QuietObserver:
    """The default observer: tells no one."""

    def api_retry(self, endpoint: str, reason: str) -> None:
        return None

    def api_not_sent(self, endpoint: str, reason: str) -> None:
        return None

    def api_circuit(self, state: CircuitState) -> None:
        return None

    def api_paused(self, until: float, added_s: float) -> None:
        return None


@dataclass
class Passage:
    """One admitted attempt: whether it speaks for the probe, and what it learned."""

    probe: bool
    owns_probe: bool
    waited_s: float
    verdict: Verdict = Verdict.NONE


class Gate:
    """The pause and the circuit of one client; see the module docstring."""

    def __init__(
        self, clock: Clock, sleep: Sleep, breaker: CircuitBreaker, observer: ClientObserver
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self.breaker, self._observer = breaker, observer
        self.paused_until: datetime | None = None

    @classmethod
    def build(
        cls,
        clock: Clock,
        sleep: Sleep,
        *,
        failure_threshold: int,
        cooldown_s: float,
        observer: ClientObserver,
    ) -> Gate:
        """A gate with a fresh circuit breaker that reports its changes to `observer`."""
        breaker = CircuitBreaker(
            clock,
            failure_threshold=failure_threshold,
            cooldown_s=cooldown_s,
            on_change=observer.api_circuit,
        )
        return cls(clock, sleep, breaker, observer)

    def pause_for(self, seconds: float) -> None:
        """Hold every request of the client for `seconds` from now (a Retry-After)."""
        if seconds <= 0:
            return
        now = self._clock.now()
        until = now + timedelta(seconds=seconds)
        current = self.paused_until if self.paused_until and self.paused_until > now else now
        if until <= current:
            return
        self.paused_until = until
        self._observer.api_paused(until.timestamp(), (until - current).total_seconds())

    @asynccontextmanager
    async def passage(self, endpoint: str, budget_s: float) -> AsyncIterator[Passage]:
        """Wait out any pause, be admitted by the circuit, and report the attempt's verdict
        (set on the passage) to it afterwards. Raises RequestNotSent instead of sending."""
        self._refuse_while_open(endpoint)
        waited = await self._wait_pause(endpoint, budget_s)
        passage = self._admit(endpoint, waited)
        riding = _IN_PROBE.set(True) if passage.owns_probe else None
        try:
            yield passage
        finally:
            if riding is not None:
                _IN_PROBE.reset(riding)
            self.breaker.record(passage.verdict, probe=passage.probe)
            if passage.owns_probe:
                self.breaker.release()

    def _refuse_while_open(self, endpoint: str) -> None:
        """Fail fast, before waiting out a pause, while the cool-down runs."""
        retry_at = self.breaker.retry_at
        if retry_at is not None and self._clock.now() < retry_at:
            raise self._not_sent(CircuitOpen(endpoint, "the circuit is open", retry_at))

    async def _wait_pause(self, endpoint: str, budget_s: float) -> float:
        waited = 0.0
        for _ in range(MAX_PAUSE_WAITS):
            until = self.paused_until
            remaining = (until - self._clock.now()).total_seconds() if until else 0.0
            if remaining <= 0:
                break
            if waited + remaining > budget_s:
                detail = "paused by Retry-After beyond this call's retry budget"
                raise self._not_sent(Throttled(endpoint, detail, until))
            await self._sleep(remaining)
            waited += remaining
            if self.paused_until == until:
                # Not extended meanwhile: the sleep saw it out (an injected sleep need
                # not move the clock, so the clock is not asked again).
                break
        return waited

    def _admit(self, endpoint: str, waited: float) -> Passage:
        if _IN_PROBE.get() and self.breaker.state is CircuitState.HALF_OPEN:
            return Passage(probe=True, owns_probe=False, waited_s=waited)
        admitted = self.breaker.admit()
        if admitted is None:
            detail = "the circuit's probe is out"
            if self.breaker.state is CircuitState.OPEN:
                detail = "the circuit is open"
            raise self._not_sent(CircuitOpen(endpoint, detail, self.breaker.retry_at))
        return Passage(probe=admitted, owns_probe=admitted, waited_s=waited)

    def _not_sent(self, error: RequestNotSent) -> RequestNotSent:
        self._observer.api_not_sent(error.endpoint, error.reason)
        return error
