"""CellectClient: the only code of cellect-monitor that calls the Cellect Partner API.

One async method per vendor operation, on an injected `httpx.AsyncClient`, with
explicit timeouts, the access-token flow of `receiver.vendor.tokens`, and bounded retries
(`receiver.vendor.retry`): exponential backoff with jitter on timeouts, connection errors and
5xx (but 501), never on other 4xx. A schedule is validated locally
(`receiver.cellect.validation`) before it is sent.

The client is friendly to the vendor as a whole, not call by call (`receiver.vendor.gate`):

- one budget: a `Retry-After` (a 429's, in seconds or as an HTTP date) pauses every
  request of the client — every poller's — until then, on the injected clock;
- a circuit breaker (`receiver.vendor.circuit`): after `circuit_failure_threshold` failures
  in a row (5xx, timeouts, connection errors; a 429 or another 4xx is an answer, not
  a failure) requests fail fast without being sent, but for one probe at a time
  after each `circuit_cooldown_s`; an answer to the probe closes the circuit;
- single-flight token renewal: concurrent requests needing a token share one request.

Error tree (everything the client raises is a CellectError)::

    CellectError                  receiver.cellect.errors
    ├── CellectApiError           a Cellect error code + HTTP status (one class per
    │                             code, UnknownCellectError for the rest): a 4xx, or a
    │                             5xx that is not retried (501)
    ├── CellectTransportError     no answer (timeout or connection error) after the
    │                             retries; `.kind` is "timeout" or "error"
    ├── RetriesExhausted          5xx/429 answers outlasted the retry bounds; `.code`,
    │                             `.http_status` and `.last_error` of the last answer
    ├── RequestNotSent            the client held the request back: nothing reached
    │   │                         Cellect; `.until` tells when that may change
    │   ├── CircuitOpen           the circuit is open, or its one probe is out
    │   └── Throttled             a Retry-After pause of the client outlasts what is
    │                             left of this call's retry budget
    ├── CellectResponseError      a 2xx answer whose body is not what the API promises
    ├── RefreshTokenRejected      the token endpoint refused the refresh token (401 /
    │                             30072, 400 / 30069, …): a human must issue a new one
    └── ScheduleRejected          local validation refused a schedule; `.violations`

Every transport and retry error is raised `from` its cause. Messages never include
tokens: vendor messages are scrubbed of both the refresh and the access token.

Observability: `on_request(endpoint, code, seconds)` is called after every HTTP
attempt (code = status as str, or "timeout" / "error"); the `observer`
(receiver.vendor.gate.ClientObserver) hears of retries, requests not sent, the circuit's
transitions and pauses; `access_token_expires_at`, `circuit_state` and `paused_until`
tell the current state.

A POST retried after a timeout may reach Cellect twice; posting the same schedule
again only overwrites the same entries, so that is the safer failure.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from receiver.cellect import paths
from receiver.cellect.clock import Clock
from receiver.cellect.enums import Symbol
from receiver.cellect.errors import CellectApiError, CellectError
from receiver.cellect.models import (
    AvailabilityEvent,
    ScheduleEntry,
    SchedulePost,
    SiteInformation,
    TimeSeriesResult,
)
from receiver.cellect.timestamps import format_timestamp
from receiver.cellect.validation import SiteRatings, Violation, validate_schedule
from receiver.settings import Settings
from receiver.vendor.circuit import CircuitState
from receiver.vendor.gate import (
    CircuitOpen,
    ClientObserver,
    Gate,
    QuietObserver,
    RequestNotSent,
    Sleep,
    Throttled,
)
from receiver.vendor.retry import (
    CellectResponseError,
    CellectTransportError,
    OnRequest,
    Requester,
    RetriesExhausted,
    RetryPolicy,
    json_body,
)
from receiver.vendor.tokens import AccessTokenAuth, RefreshTokenExchange, RefreshTokenRejected

logger = logging.getLogger(__name__)

__all__ = [
    "CellectApiError",
    "CellectClient",
    "CellectError",
    "CellectResponseError",
    "CellectTransportError",
    "CircuitOpen",
    "CircuitState",
    "RefreshTokenRejected",
    "RequestNotSent",
    "RetriesExhausted",
    "ScheduleRejected",
    "Throttled",
]
ModelT = TypeVar("ModelT", bound=BaseModel)


class ScheduleRejected(CellectError):
    """A schedule failed local validation and was not sent."""

    def __init__(self, site_id: int, violations: Sequence[Violation]) -> None:
        self.site_id, self.violations = site_id, list(violations)
        self.code: int | None = self.violations[0].code if self.violations else None
        self.http_status: int | None = None
        detail = "; ".join(f"{v.code} {v.field}: {v.message}" for v in self.violations)
        super().__init__(f"schedule for site {site_id} rejected locally: {detail}")


ScheduleInput = SchedulePost | Mapping[str, Any] | Sequence[ScheduleEntry | Mapping[str, Any]]


class CellectClient:
    """Async client of the Cellect Partner API; see the module docstring."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str,
        token_url: str,
        refresh_token: SecretStr,
        clock: Clock,
        retry_attempts: int = 5,
        retry_max_s: float = 60.0,
        timeout: float | httpx.Timeout = 10.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_request: OnRequest | None = None,
        circuit_failure_threshold: int = 5,
        circuit_cooldown_s: float = 30.0,
        observer: ClientObserver | None = None,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._clock = clock
        observer = observer or QuietObserver()
        self._gate = Gate.build(
            clock,
            sleep,
            failure_threshold=circuit_failure_threshold,
            cooldown_s=circuit_cooldown_s,
            observer=observer,
        )
        self._requester = Requester(
            http,
            clock=clock,
            policy=RetryPolicy(attempts=max(1, retry_attempts), max_s=retry_max_s),
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            sleep=sleep,
            rng=rng or random.Random(),
            on_request=on_request,
            secrets=lambda: (refresh_token.get_secret_value(), self._auth.current_token),
            gate=self._gate,
            observer=observer,
        )
        exchange = RefreshTokenExchange(self._requester, token_url, refresh_token, clock)
        self._auth = AccessTokenAuth(exchange, clock)

    @classmethod
    def from_settings(
        cls, settings: Settings, http: httpx.AsyncClient, clock: Clock, **kwargs: Any
    ) -> CellectClient:
        """A client configured from `Settings` (CELLECT_API_URL, CELLECT_REFRESH_TOKEN, …)."""
        if settings.refresh_token is None:
            raise ValueError("CELLECT_REFRESH_TOKEN is not set")
        return cls(
            http,
            api_url=settings.api_url,
            token_url=settings.token_url,
            refresh_token=settings.refresh_token,
            clock=clock,
            retry_attempts=settings.retry_attempts,
            retry_max_s=settings.retry_max_s,
            timeout=settings.http_timeout_s,
            circuit_failure_threshold=settings.circuit_failure_threshold,
            circuit_cooldown_s=settings.circuit_cooldown_s,
            **kwargs,
        )

    @property
    def access_token_expires_at(self) -> datetime | None:
        """Expiry of the current access token; None until the first one is fetched."""
        return self._auth.expires_at

    @property
    def circuit_state(self) -> CircuitState:
        """The circuit breaker's state (closed, half-open while a probe may go, open)."""
        return self._gate.breaker.state

    @property
    def paused_until(self) -> datetime | None:
        """Until when a Retry-After pauses every request; None when not paused."""
        until = self._gate.paused_until
        return until if until is not None and until > self._clock.now() else None

    # --- vendor operations -------------------------------------------------------

    async def post_schedule(
        self,
        site_id: int,
        schedule: ScheduleInput,
        *,
        ratings: SiteRatings | SiteInformation,
        partner_account_id: int | None = None,
    ) -> list[ScheduleEntry]:
        """Store Time Series (EssPowerAC); returns the entries sent, sorted by start.

        Raises ScheduleRejected, without sending anything, when the schedule breaks a rule.
        """
        body = _schedule_body(schedule, partner_account_id)
        result = validate_schedule(body, _site_ratings(ratings), self._clock.now())
        if not result.ok:
            raise ScheduleRejected(site_id, result.violations)
        wire: dict[str, Any] = {"data": [entry.wire() for entry in result.entries]}
        if result.partner_account_id is not None:
            wire["partnerAccountId"] = result.partner_account_id
        url = self._api_url + paths.time_series(site_id)
        params = {"symbol": Symbol.ESS_POWER_AC.value}
        await self._call("store_time_series", "POST", url, params=params, json=wire)
        return result.entries

    async def delete_schedule(self, site_id: int, start: datetime, end: datetime) -> None:
        """Delete the not-yet-started entries overlapping [start, end)."""
        params = _window(Symbol.ESS_POWER_AC, start, end)
        url = self._api_url + paths.time_series(site_id)
        await self._call("delete_time_series", "DELETE", url, params=params)

    async def ex_ante(self, site_id: int, start: datetime, end: datetime) -> list[TimeSeriesResult]:
        """The planned schedule (within the next 48 h) with each entry's status."""
        return await self._time_series("ex_ante", Symbol.EX_ANTE, site_id, start, end)

    async def ex_post(self, site_id: int, start: datetime, end: datetime) -> list[TimeSeriesResult]:
        """The schedule of a past window, as executed."""
        return await self._time_series("ex_post", Symbol.EX_POST, site_id, start, end)

    async def site_information(self, site_id: int) -> SiteInformation:
        """Master data and live state of one site."""
        url = self._api_url + paths.master_data(site_id)
        params = {"symbol": Symbol.SITE_INFORMATION.value}
        response = await self._call("site_information", "GET", url, params=params)
        body = json_body(response, "site_information")
        # The guide answers an array of one site; a bare object is accepted too.
        items = body if isinstance(body, list) else [body]
        sites = _models(items, SiteInformation, "site_information")
        if not sites:
            raise CellectResponseError("site_information", response.status_code, "no site")
        return sites[0]

    async def portfolio_overview(self) -> list[SiteInformation]:
        """Master data and live state of every site of the partner."""
        url = self._api_url + paths.PORTFOLIO_MASTER_DATA
        params = {"symbol": Symbol.PORTFOLIO_OVERVIEW.value}
        response = await self._call("portfolio_overview", "GET", url, params=params)
        return _list_of(response, SiteInformation, "portfolio_overview", "portfolio")

    async def availability_events(self, site_id: int) -> list[AvailabilityEvent]:
        """Availability events (planned and unplanned outages) of one site."""
        url = self._api_url + paths.events(site_id)
        params = {"symbol": Symbol.AVAILABILITY.value}
        response = await self._call("availability", "GET", url, params=params)
        return _list_of(response, AvailabilityEvent, "availability", "availability")

    async def _time_series(
        self, endpoint: str, symbol: Symbol, site_id: int, start: datetime, end: datetime
    ) -> list[TimeSeriesResult]:
        url = self._api_url + paths.time_series(site_id)
        response = await self._call(endpoint, "GET", url, params=_window(symbol, start, end))
        body = json_body(response, endpoint)
        items = body.get("results") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise CellectResponseError(endpoint, response.status_code, "no results array")
        return _models(items, TimeSeriesResult, endpoint)

    async def _call(self, endpoint: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A resource call, authorised by the access-token flow."""
        return await self._requester.send(endpoint, method, url, auth=self._auth, **kwargs)


def _schedule_body(schedule: ScheduleInput, partner_account_id: int | None) -> dict[str, Any]:
    """The Store Time Series body in wire spelling, from any accepted input shape."""
    if isinstance(schedule, SchedulePost):
        body = schedule.model_dump(by_alias=True, mode="json", exclude_none=True)
    elif isinstance(schedule, Mapping):
        body = dict(schedule)
    else:
        body = {"data": [e.wire() if isinstance(e, ScheduleEntry) else e for e in schedule]}
    if partner_account_id is not None:
        body["partnerAccountId"] = partner_account_id
    return body


def _site_ratings(ratings: SiteRatings | SiteInformation) -> SiteRatings:
    if isinstance(ratings, SiteRatings):
        return ratings
    return SiteRatings(ratings.ess_power_ac_rated_charge, ratings.ess_power_ac_rated_discharge)


def _window(symbol: Symbol, start: datetime, end: datetime) -> dict[str, str]:
    return {
        "symbol": symbol.value,
        "startDate": format_timestamp(start),
        "endDate": format_timestamp(end),
    }


def _list(response: httpx.Response, endpoint: str) -> list[Any]:
    body = json_body(response, endpoint)
    if not isinstance(body, list):
        raise CellectResponseError(endpoint, response.status_code, "not a JSON array")
    return body


def _list_of(
    response: httpx.Response, model: type[ModelT], endpoint: str, what: str
) -> list[ModelT]:
    """A JSON array of `model` items, parsed from the bytes by pydantic at once: no
    intermediate dicts (at 10,000 sites the PortfolioOverview's were ~10 MB on top of the
    models, the monitor's peak memory, bench/metrics.py). Anything else — a malformed
    item, not an array, not JSON — takes the item-by-item path, which skips bad items
    and names what is wrong, exactly as before."""
    try:
        return _list_adapter(model).validate_json(response.content)
    except ValidationError:
        return _models(_list(response, endpoint), model, what)


@functools.cache
def _list_adapter(model: type[ModelT]) -> TypeAdapter[list[ModelT]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _models(items: list[Any], model: type[ModelT], endpoint: str) -> list[ModelT]:
    """Parse each item; a malformed item is logged and skipped, so one bad site does not
    blind the monitor to all the others."""
    parsed = []
    for index, item in enumerate(items):
        try:
            parsed.append(model.model_validate(item))
        except ValidationError as exc:
            fields = sorted({".".join(map(str, e["loc"])) for e in exc.errors()})
            logger.warning("Cellect %s: item %d malformed (%s), skipped", endpoint, index, fields)
    return parsed
