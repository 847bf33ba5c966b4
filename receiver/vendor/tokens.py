"""The Cellect access-token lifecycle as an httpx auth flow (used by receiver.vendor.client).

Cellect trades the partner's long-lived refresh token for a 6-hour access token (a
JWT). `AccessTokenAuth` keeps one such token for a client:

- it fetches the first token lazily, on the first request that needs one;
- it renews the token `margin` before the JWT's `exp`, reading time from the injected
  Clock (the claim is read without verifying the signature: the vendor verifies its
  own tokens, we only need to know when to renew);
- on a 401 answer it renews once and sends the request once more — unless the token
  was renewed meanwhile (by a request that met the 401 first), when it just sends the
  request again with the new one;
- renewals are single-flight: concurrent requests that need a token (none yet, about
  to expire, or refused) share one access-token request, in a task of its own, and
  all get its outcome — its token, or its error. A failing token endpoint is asked
  once per renewal, not once per waiting request.

The exchange itself (`RefreshTokenExchange`: POST {token_url}/v1/access-token with
`Authorization: Bearer <refresh token>`, answer `{"accessToken": JWT}`) goes through the
client's Requester, so retries, error mapping and observability apply to it as to
every other endpoint. A refresh token the endpoint refuses (401 / 30072, 400 / 30069,
30082, 30083) raises RefreshTokenRejected: loud, and not retried — for a minute of the
clock after a rejection, requests fail at once instead of asking again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
from pydantic import SecretStr, ValidationError

from receiver.cellect import paths
from receiver.cellect.clock import Clock
from receiver.cellect.errors import CellectApiError, CellectError
from receiver.cellect.models import AccessTokenResponse
from receiver.vendor.retry import CellectResponseError, Requester, json_body

logger = logging.getLogger(__name__)

TokenFetcher = Callable[[], Awaitable[str]]

# What the guide promises; assumed when a token carries no readable `exp`.
DEFAULT_LIFETIME = timedelta(hours=6)
DEFAULT_MARGIN = timedelta(minutes=5)
# Codes of the token endpoint that mean "this refresh token will never work".
REFRESH_TOKEN_CODES = frozenset({30069, 30072, 30082, 30083})
REJECTION_COOLDOWN = timedelta(minutes=1)


class RefreshTokenRejected(CellectError):
    """The refresh token was refused: a human has to issue a new one (no retry helps)."""

    def __init__(self, code: int, http_status: int) -> None:
        self.code, self.http_status = code, http_status
        super().__init__(
            f"the Cellect refresh token was rejected ({http_status}, error code {code}); "
            "issue a new one in the Cellect partner dashboard and set CELLECT_REFRESH_TOKEN"
        )


def token_expiry(token: str, *, issued_at: datetime) -> datetime:
    """The JWT's `exp` as an aware datetime; `issued_at` + 6 h when it has none."""
    try:
        claims = jwt.decode(
            token, options={"verify_signature": False, "verify_exp": False, "verify_aud": False}
        )
    except jwt.PyJWTError:
        return issued_at + DEFAULT_LIFETIME
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return datetime.fromtimestamp(exp, UTC)
    return issued_at + DEFAULT_LIFETIME


class RefreshTokenExchange:
    """Trades the refresh token for a new access token (the injected `fetch` of the auth)."""

    def __init__(
        self, requester: Requester, token_url: str, refresh_token: SecretStr, clock: Clock
    ) -> None:
        self._requester, self._clock = requester, clock
        self._url = token_url.rstrip("/") + paths.ACCESS_TOKEN
        self._refresh_token = refresh_token
        self._rejected: tuple[RefreshTokenRejected, datetime] | None = None

    async def __call__(self) -> str:
        if self._rejected is not None and self._clock.now() < self._rejected[1]:
            raise RefreshTokenRejected(self._rejected[0].code, self._rejected[0].http_status)
        headers = {"Authorization": f"Bearer {self._refresh_token.get_secret_value()}"}
        try:
            response = await self._requester.send(
                "access_token", "POST", self._url, json={}, headers=headers, auth=None
            )
        except CellectApiError as exc:
            rejected = self._rejection(exc)
            if rejected is None:
                raise
            raise rejected from exc
        self._rejected = None
        try:
            return AccessTokenResponse.model_validate(
                json_body(response, "access_token")
            ).access_token
        except ValidationError:
            raise CellectResponseError(
                "access_token", response.status_code, "no accessToken in the answer"
            ) from None

    def _rejection(self, exc: CellectApiError) -> RefreshTokenRejected | None:
        """The rejection an error answer of the token endpoint means, if it means one."""
        if exc.http_status != 401 and exc.code not in REFRESH_TOKEN_CODES:
            return None
        rejected = RefreshTokenRejected(exc.code, exc.http_status)
        self._rejected = (rejected, self._clock.now() + REJECTION_COOLDOWN)
        logger.error("%s", rejected)
        return rejected


class AccessTokenAuth(httpx.Auth):
    """Adds `Authorization: Bearer <access token>` to each request, renewing as needed."""

    def __init__(
        self, fetch: TokenFetcher, clock: Clock, *, margin: timedelta = DEFAULT_MARGIN
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self._renewal: asyncio.Task[str] | None = None  # the renewal in flight, if any

    @property
    def expires_at(self) -> datetime | None:
        """When the current access token expires (None before the first one)."""
        return self._expires_at

    @property
    def current_token(self) -> str | None:
        """The access token in use, for redaction only."""
        return self._token

    def _fresh(self) -> bool:
        if self._token is None or self._expires_at is None:
            return False
        return self._clock.now() < self._expires_at - self._margin

    async def token(self) -> str:
        """A token that is valid for at least `margin` more, renewing if needed."""
        if self._fresh() and self._token is not None:
            return self._token
        return await self._renewed(stale=self._token)

    async def _renewed(self, *, stale: str | None) -> str:
        """A token other than `stale`: the current one if it was renewed meanwhile, else
        the outcome of the one renewal in flight (started here if none is)."""
        if self._token is not None and self._token != stale and self._fresh():
            return self._token
        if self._renewal is None:
            self._renewal = asyncio.create_task(self._renew())
            self._renewal.add_done_callback(_retrieve)
        # Shielded: a waiter that is cancelled (a poller stopping) must not cancel the
        # renewal the others are waiting for.
        return await asyncio.shield(self._renewal)

    async def _renew(self) -> str:
        try:
            token = await self._fetch()
        finally:
            self._renewal = None
        self._token = token
        self._expires_at = token_expiry(token, issued_at=self._clock.now())
        logger.info("Cellect access token renewed, expires at %s", self._expires_at)
        return token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("AccessTokenAuth needs an httpx.AsyncClient")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != httpx.codes.UNAUTHORIZED:
            return
        # The token was refused before its time (revoked, or the vendor restarted):
        # renew once and try once more; a second 401 goes back to the caller.
        token = await self._renewed(stale=token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _retrieve(task: asyncio.Task[str]) -> None:
    """Mark a renewal's error as seen: when every waiter was cancelled, nobody else will."""
    if not task.cancelled():
        task.exception()
