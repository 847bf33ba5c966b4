"""Bounded retries of one HTTP call to Cellect (used by receiver.vendor.client).

`Requester.send` makes one logical call: it retries timeouts, connection errors, 5xx
(but 501 Not Implemented, which no retry fixes) and 429, bounded by a number of
attempts and a total time budget (time spent in requests, in backoff and in pauses).
Other 4xx answers are raised at once as the typed CellectApiError of their body.
Every attempt is reported to `on_request`, every decision to try again to the
observer's `api_retry` (reasons: RETRY_REASONS).

Each attempt passes the client's `Gate` (receiver.vendor.gate) first: a `Retry-After` is not
a wait of this call alone but a pause of the whole client, which the next attempt (and
every other request) waits out there; the circuit breaker may refuse the attempt
(`CircuitOpen`). Failures without Retry-After back off per call, exponentially with
jitter, so concurrent calls do not retry in step.

Sleeps are injected, so tests (and an emulated-time demo) need not wait in real time.
Vendor error messages are scrubbed of the secrets in play before they become
exceptions. Retries are logged at debug level only (the metric counts them; the
breaker and the pollers log the transitions that matter). The errors raised here are
part of the client's error tree, documented in receiver.vendor.client.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from receiver.cellect.clock import Clock
from receiver.cellect.errors import CellectApiError, CellectError, error_from_response
from receiver.runtime.redaction import scrub
from receiver.vendor.circuit import Verdict, verdict_of
from receiver.vendor.gate import ClientObserver, Gate, Passage, RequestNotSent, Sleep

logger = logging.getLogger(__name__)

OnRequest = Callable[[str, str, float], None]
# Why a call tries again: 429 (rate_limited), other retried 5xx (server_error), a
# timeout, a connection error (connection).
RETRY_REASONS = ("rate_limited", "server_error", "timeout", "connection")


class CellectTransportError(CellectError):
    """No answer from Cellect (timeout or connection error), after the retries."""

    def __init__(self, endpoint: str, kind: str, attempts: int) -> None:
        self.endpoint, self.kind, self.attempts = endpoint, kind, attempts
        self.code: int | None = None
        self.http_status: int | None = None
        super().__init__(f"{endpoint}: {kind} after {attempts} attempt(s)")


class RetriesExhausted(CellectError):
    """Cellect kept answering 5xx or 429 until the retry bounds ran out."""

    def __init__(self, endpoint: str, last_error: CellectApiError, attempts: int) -> None:
        self.endpoint, self.last_error, self.attempts = endpoint, last_error, attempts
        self.code: int = last_error.code
        self.http_status: int = last_error.http_status
        super().__init__(f"{endpoint}: gave up after {attempts} attempt(s): {last_error}")


class CellectResponseError(CellectError):
    """A successful answer whose body does not have the promised shape."""

    def __init__(self, endpoint: str, http_status: int, detail: str) -> None:
        self.endpoint, self.http_status, self.detail = endpoint, http_status, detail
        self.code: int | None = None
        super().__init__(f"{endpoint}: unexpected response ({http_status}): {detail}")


def json_body(response: httpx.Response, endpoint: str) -> Any:
    """The decoded JSON of a successful answer, or CellectResponseError."""
    try:
        return response.json()
    except ValueError:
        raise CellectResponseError(endpoint, response.status_code, "not JSON") from None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one call."""

    attempts: int = 5
    max_s: float = 60.0
    base_s: float = 0.5
    cap_s: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential, with "equal jitter": between half and all of base × 2^(attempt-1)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def is_retriable(status: int) -> bool:
    return status == 429 or (500 <= status < 600 and status != 501)


def retry_after_s(value: str | None, clock: Clock) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - clock.now()).total_seconds())


@dataclass
class _Failure:
    """A retriable failure of one attempt."""

    kind: str  # "timeout", "error" or "status"
    cause: Exception
    wait_s: float | None = None  # what the server asked for, if anything

    @property
    def reason(self) -> str:
        """The retry reason (RETRY_REASONS) this failure gives."""
        if isinstance(self.cause, CellectApiError):
            return "rate_limited" if self.cause.http_status == 429 else "server_error"
        return "timeout" if self.kind == "timeout" else "connection"


class Requester:
    """Sends requests on the injected httpx client with retries; see the module docstring."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: Clock,
        policy: RetryPolicy,
        timeout: httpx.Timeout,
        sleep: Sleep,
        rng: random.Random,
        on_request: OnRequest | None,
        secrets: Callable[[], Iterable[str | None]],
        gate: Gate,
        observer: ClientObserver,
    ) -> None:
        self._http, self._clock, self._policy = http, clock, policy
        self._timeout, self._sleep, self._rng = timeout, sleep, rng
        self._on_request, self._secrets = on_request, secrets
        self._gate, self._observer = gate, observer

    async def send(self, endpoint: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call: the first 2xx/3xx response, or a CellectError."""
        used_s, attempt = 0.0, 0
        failure: _Failure | None = None
        while True:
            attempt += 1
            try:
                outcome, spent_s = await self._through_gate(
                    endpoint, method, url, kwargs, self._policy.max_s - used_s
                )
            except RequestNotSent as exc:
                # Chained to what this call met before, if anything: the reason it stops.
                raise exc from (failure.cause if failure else None)
            used_s += spent_s
            if isinstance(outcome, httpx.Response):
                return outcome
            failure = outcome
            delay = self._retry_delay(endpoint, failure, attempt, used_s)
            if delay > 0:
                await self._sleep(delay)
                used_s += delay

    async def _through_gate(
        self, endpoint: str, method: str, url: str, kwargs: dict[str, Any], budget_s: float
    ) -> tuple[httpx.Response | _Failure, float]:
        """One attempt through the client's gate; also returns the time it took, waits included."""
        async with self._gate.passage(endpoint, budget_s) as passage:
            started = time.perf_counter()
            outcome = await self._attempt(endpoint, method, url, kwargs, passage)
            return outcome, passage.waited_s + time.perf_counter() - started

    def _retry_delay(self, endpoint: str, failure: _Failure, attempt: int, used_s: float) -> float:
        """The backoff before the next attempt, or raise when the bounds are reached. A
        Retry-After is no backoff of this call: it paused the whole client, and the gate
        waits it out (it still counts against this call's time budget)."""
        wait = failure.wait_s
        delay = self._policy.backoff(attempt, self._rng) if wait is None else 0.0
        if attempt >= self._policy.attempts or used_s + (wait or delay) > self._policy.max_s:
            raise self._give_up(endpoint, failure, attempt) from failure.cause
        self._observer.api_retry(endpoint, failure.reason)
        logger.debug(
            "Cellect %s: %s, attempt %d of %d, retrying",
            endpoint, _describe(failure), attempt, self._policy.attempts,
        )  # fmt: skip
        return delay

    async def _attempt(
        self, endpoint: str, method: str, url: str, kwargs: dict[str, Any], passage: Passage
    ) -> httpx.Response | _Failure:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, url, timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            self._report(endpoint, "timeout", started, passage)
            return _Failure("timeout", exc)
        except httpx.TransportError as exc:
            self._report(endpoint, "error", started, passage)
            return _Failure("error", exc)
        except httpx.RequestError as exc:  # redirects, decoding: no retry helps
            self._report(endpoint, "error", started, passage)
            passage.verdict = Verdict.NONE  # something answered; we could not use it
            raise CellectTransportError(endpoint, "error", 1) from exc
        self._report(endpoint, str(response.status_code), started, passage)
        if response.status_code < 400:
            return response
        wait = retry_after_s(response.headers.get("Retry-After"), self._clock)
        if wait is not None:
            self._gate.pause_for(wait)
        error = self.api_error(response)
        if not is_retriable(response.status_code):
            raise error
        return _Failure("status", error, wait)

    def _give_up(self, endpoint: str, failure: _Failure, attempts: int) -> CellectError:
        if isinstance(failure.cause, CellectApiError):
            return RetriesExhausted(endpoint, failure.cause, attempts)
        return CellectTransportError(endpoint, failure.kind, attempts)

    def api_error(self, response: httpx.Response) -> CellectApiError:
        """The typed error of an error response, its message scrubbed of secrets."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            body = {**body, "message": self.redact(body["message"])}
        elif isinstance(body, str):
            body = self.redact(body)
        return error_from_response(response.status_code, body)

    def redact(self, text: str) -> str:
        return scrub(text, [secret for secret in self._secrets() if secret])

    def _report(self, endpoint: str, code: str, started: float, passage: Passage) -> None:
        passage.verdict = verdict_of(code)
        if self._on_request is None:
            return
        try:
            self._on_request(endpoint, code, time.perf_counter() - started)
        except Exception:  # an observer's bug must not break the call it observes
            logger.exception("on_request hook failed")


def _describe(failure: _Failure) -> str:
    if isinstance(failure.cause, CellectApiError):
        return f"HTTP {failure.cause.http_status} ({failure.cause.code})"
    return failure.kind
