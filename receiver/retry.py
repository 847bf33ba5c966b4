"""Bounded retries of one HTTP call to Cellect (used by receiver.client).

`Requester.send` makes one logical call: it retries timeouts, connection errors, 5xx
(but 501 Not Implemented, which no retry fixes) and 429 with exponential backoff and
jitter, or after the server's `Retry-After` (seconds, or an HTTP date read against the
injected Clock), bounded by a number of attempts and a total time budget (time spent
in requests plus time slept). Other 4xx answers are raised at once as the typed
CellectApiError of their body. Every attempt is reported to `on_request`.

The sleep between attempts is injected, so tests (and an emulated-time demo) need not
wait in real time. Vendor error messages are scrubbed of the secrets in play before
they become exceptions. The errors raised here are part of the client's error tree,
documented in receiver.client.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from receiver.cellect.clock import Clock
from receiver.cellect.errors import CellectApiError, CellectError, error_from_response

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
OnRequest = Callable[[str, str, float], None]


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
    ) -> None:
        self._http, self._clock, self._policy = http, clock, policy
        self._timeout, self._sleep, self._rng = timeout, sleep, rng
        self._on_request, self._secrets = on_request, secrets

    async def send(self, endpoint: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call: the first 2xx/3xx response, or a CellectError."""
        used_s, attempt = 0.0, 0
        while True:
            attempt += 1
            started = time.perf_counter()
            outcome = await self._attempt(endpoint, method, url, kwargs)
            used_s += time.perf_counter() - started
            if isinstance(outcome, httpx.Response):
                return outcome
            delay = outcome.wait_s
            if delay is None:
                delay = self._policy.backoff(attempt, self._rng)
            if attempt >= self._policy.attempts or used_s + delay > self._policy.max_s:
                raise self._give_up(endpoint, outcome, attempt) from outcome.cause
            logger.warning(
                "Cellect %s: %s, attempt %d of %d, retrying in %.2f s",
                endpoint, _describe(outcome), attempt, self._policy.attempts, delay,
            )  # fmt: skip
            await self._sleep(delay)
            used_s += delay

    async def _attempt(
        self, endpoint: str, method: str, url: str, kwargs: dict[str, Any]
    ) -> httpx.Response | _Failure:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, url, timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            self._report(endpoint, "timeout", started)
            return _Failure("timeout", exc)
        except httpx.TransportError as exc:
            self._report(endpoint, "error", started)
            return _Failure("error", exc)
        except httpx.RequestError as exc:  # redirects, decoding: no retry helps
            self._report(endpoint, "error", started)
            raise CellectTransportError(endpoint, "error", 1) from exc
        self._report(endpoint, str(response.status_code), started)
        if response.status_code < 400:
            return response
        error = self.api_error(response)
        if not is_retriable(response.status_code):
            raise error
        wait = retry_after_s(response.headers.get("Retry-After"), self._clock)
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
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _report(self, endpoint: str, code: str, started: float) -> None:
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
