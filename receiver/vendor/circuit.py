"""The client's circuit breaker: when the Cellect API stops answering, stop asking it.

States (exported as `cellect_api_circuit_state`)::

    CLOSED    (0)  requests go out. A failure — no answer: a 5xx, a timeout, a
                   connection error — counts; any answer (2xx to 4xx, a 429 too)
                   resets the count. `failure_threshold` failures in a row open it.
    OPEN      (2)  requests are refused without being sent, for `cooldown_s` of the
                   injected clock.
    HALF_OPEN (1)  after the cool-down, one request at a time goes out as a probe (the
                   others are refused meanwhile): an answer closes the circuit, a
                   failure opens it for another cool-down, and a probe that ends
                   without either (cancelled, or failing on our side) frees the slot.

A 429 is the vendor throttling us (the client's Retry-After pause deals with it) and a
4xx is the vendor answering: neither means the API is down — the same line the ApiDown
alert draws.

This is a pure state machine on the clock; `receiver.vendor.gate` puts it in front of each
HTTP attempt. Hand-written rather than taken from a library: the breakers on PyPI wrap a
whole function call and time the cool-down by the wall clock (purgatory's `time.time()`,
and it lets every request through while half-open; pybreaker is synchronous, with
thread locks), whereas ours judges single attempts inside the retry loop, must follow
an emulated (fast or frozen) clock, and must let the probe's own token request through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import IntEnum

from receiver.cellect.clock import Clock

log = logging.getLogger(__name__)


class CircuitState(IntEnum):
    """The breaker's state; the value is what `cellect_api_circuit_state` exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Verdict(IntEnum):
    """What one attempt says about the API."""

    ANSWERED = 0  # any HTTP answer below 500: the API is up
    FAILED = 1  # a 5xx, a timeout, a connection error: no answer
    NONE = 2  # nothing learned (cancelled, or the request failed on our side)


def verdict_of(code: str) -> Verdict:
    """The verdict of an attempt reported as `code` (HTTP status, "timeout" or "error")."""
    if code.isdigit() and int(code) < 500:
        return Verdict.ANSWERED
    return Verdict.FAILED


class CircuitBreaker:
    """See the module docstring. Not thread-safe: one event loop uses it."""

    def __init__(
        self,
        clock: Clock,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self._clock = clock
        self.failure_threshold = max(1, failure_threshold)
        self.cooldown = timedelta(seconds=cooldown_s)
        self._on_change = on_change
        self.state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at: datetime | None = None
        self._probing = False

    @property
    def retry_at(self) -> datetime | None:
        """When the next probe may go out (None unless open)."""
        if self.state is not CircuitState.OPEN or self._opened_at is None:
            return None
        return self._opened_at + self.cooldown

    def admit(self) -> bool | None:
        """May a request go out now? None: no; False: yes; True: yes, as the probe — the
        caller then owns the probe slot until it calls `release()`."""
        if self.state is CircuitState.CLOSED:
            return False
        if self.state is CircuitState.OPEN:
            retry_at = self.retry_at
            if retry_at is not None and self._clock.now() < retry_at:
                return None
            self._set(CircuitState.HALF_OPEN)
        if self._probing:
            return None
        self._probing = True
        return True

    def release(self) -> None:
        """The probe has ended (whatever its outcome): another may go when half-open."""
        self._probing = False

    def record(self, verdict: Verdict, *, probe: bool) -> None:
        """The outcome of an admitted attempt; `probe`: it went out as (part of) the probe."""
        if verdict is Verdict.ANSWERED:
            self._failures = 0
            self._set(CircuitState.CLOSED)
        elif verdict is Verdict.FAILED:
            if probe and self.state is CircuitState.HALF_OPEN:
                self._open()
            elif self.state is CircuitState.CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._open()
            # Otherwise a straggler sent before the circuit opened: the probe decides.

    def _open(self) -> None:
        self._opened_at = self._clock.now()
        self._failures = 0
        self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        if state is self.state:
            return
        previous, self.state = self.state, state
        self._log(previous, state)
        if self._on_change is not None:
            self._on_change(state)

    def _log(self, previous: CircuitState, state: CircuitState) -> None:
        # Transitions only: one line when the API goes away, one when it is back.
        if state is CircuitState.OPEN and previous is CircuitState.CLOSED:
            log.warning(
                "Cellect API circuit open after %d failures in a row: requests fail fast, "
                "one probe every %.0f s",
                self.failure_threshold,
                self.cooldown.total_seconds(),
            )
        elif state is CircuitState.CLOSED:
            log.info("Cellect API circuit closed: the API answers again")
        else:
            log.debug("Cellect API circuit %s", state.name.lower())
