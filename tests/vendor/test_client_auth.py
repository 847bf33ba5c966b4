"""The access-token flow against the emulator: renewal by the clock, on 401, single-flight
for concurrent requests (its token or its error shared), and a rejected refresh token as
one loud error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from receiver.cellect.clock import Clock
from receiver.emulator.cloud import Emulator
from receiver.settings import Settings
from receiver.vendor.client import CellectClient, RefreshTokenRejected, RetriesExhausted
from tests.support.door import Door
from tests.support.vendor import BASE_URL, SITES, Control, Recorder

pytestmark = pytest.mark.anyio


async def test_one_token_serves_many_calls(client: CellectClient, recorder: Recorder) -> None:
    """Calls within the token's life reuse the one access token."""
    for _ in range(3):
        await client.portfolio_overview()
    assert recorder.count("access_token") == 1
    assert recorder.count("portfolio_overview") == 3


async def test_expiry_is_exposed_from_the_jwt(
    client: CellectClient, clock: Clock, recorder: Recorder
) -> None:
    """access_token_expires_at is None before the first call, then the token's exp (6 h on)."""
    assert client.access_token_expires_at is None
    await client.portfolio_overview()
    assert client.access_token_expires_at == clock.now() + timedelta(hours=6)


async def test_token_is_renewed_before_it_expires(
    client: CellectClient, clock: Clock, recorder: Recorder
) -> None:
    """Within 5 minutes of exp the next call fetches a new token first, and succeeds."""
    await client.portfolio_overview()
    first_expiry = client.access_token_expires_at
    clock.advance(6 * 3600 - 6 * 60)  # 6 minutes before exp: still outside the margin
    await client.portfolio_overview()
    assert recorder.count("access_token") == 1
    clock.advance(2 * 60)  # 4 minutes before exp: renew now rather than risk a 401
    await client.portfolio_overview()
    assert recorder.count("access_token") == 2
    assert client.access_token_expires_at is not None
    assert first_expiry is not None
    assert client.access_token_expires_at > first_expiry
    assert ("portfolio_overview", "401") not in recorder.requests


async def test_token_is_renewed_across_the_six_hour_boundary(
    client: CellectClient, clock: Clock, recorder: Recorder
) -> None:
    """After the 6 h boundary the second call fetches a new token and gets no 401."""
    await client.site_information(1)
    clock.advance(6 * 3600 + 1)
    await client.site_information(1)
    assert recorder.count("access_token") == 2
    assert [code for name, code in recorder.requests if name == "site_information"] == [
        "200",
        "200",
    ]


async def test_401_refreshes_once_and_retries(
    client: CellectClient, control: Control, recorder: Recorder
) -> None:
    """A token the vendor stops honouring early gets one refresh and the call succeeds."""
    await client.portfolio_overview()
    await control.expire_access_tokens()
    sites = await client.portfolio_overview()
    assert len(sites) == SITES
    assert recorder.count("access_token") == 2
    assert recorder.sleeps == []


async def test_concurrent_requests_share_one_refresh(
    client: CellectClient, recorder: Recorder
) -> None:
    """Twenty concurrent requests on a fresh client cause exactly one token request."""
    results = await asyncio.gather(*(client.site_information(1 + i % SITES) for i in range(20)))
    assert len(results) == 20
    assert recorder.count("access_token") == 1
    assert recorder.count("site_information") == 20


async def test_concurrent_requests_after_a_401_share_one_refresh(
    client: CellectClient, control: Control, door: Door
) -> None:
    """After the vendor expires tokens early, twenty concurrent 401s lead to one renewal,
    and a request refused after it was made retries with the new token at once."""
    await client.portfolio_overview()
    await control.expire_access_tokens()
    door.clear()
    sites = await asyncio.gather(*(client.site_information(1 + i % SITES) for i in range(20)))
    assert len(sites) == 20
    assert door.count("access-token") == 1
    assert door.count("master-data", 200) == 20
    assert door.count("master-data", 401) <= 20  # at most once each, the renewal shared


async def test_concurrent_requests_with_an_expired_token_make_one_token_request(
    client: CellectClient, clock: Clock, door: Door
) -> None:
    """Twenty concurrent requests once the token has expired on the clock ask for exactly
    one new token, and none of them is refused."""
    await client.portfolio_overview()
    clock.advance(6 * 3600 + 1)
    door.clear()
    await asyncio.gather(*(client.site_information(1 + i % SITES) for i in range(20)))
    assert door.count("access-token") == 1
    assert door.count("master-data", 401) == 0


async def test_a_failing_renewal_is_shared_by_every_waiting_request(
    client: CellectClient, control: Control, door: Door
) -> None:
    """With the token endpoint failing, twenty concurrent requests share one renewal: its
    five attempts reach the token endpoint (not five per request) and all twenty get its
    error; no resource request goes out without a token."""
    await control.fault("access-token", error_rate=1.0)
    outcomes = await asyncio.gather(
        *(client.site_information(1) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, RetriesExhausted) for o in outcomes), outcomes
    assert {o.endpoint for o in outcomes if isinstance(o, RetriesExhausted)} == {"access_token"}
    assert door.seen == [("access-token", 500)] * 5


async def test_revoked_refresh_token_is_rejected_without_retrying(
    client: CellectClient, control: Control, recorder: Recorder
) -> None:
    """A revoked refresh token raises RefreshTokenRejected (401/30072) after one request."""
    await control.revoke_refresh_tokens()
    with pytest.raises(RefreshTokenRejected) as caught:
        await client.portfolio_overview()
    assert (caught.value.code, caught.value.http_status) == (30072, 401)
    assert recorder.requests == [("access_token", "401")]
    assert recorder.sleeps == []


async def test_rejection_is_not_asked_again_by_concurrent_requests(
    client: CellectClient, control: Control, recorder: Recorder
) -> None:
    """Twenty concurrent requests with a bad refresh token make one token request."""
    await control.revoke_refresh_tokens()
    outcomes = await asyncio.gather(
        *(client.site_information(1) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(outcome, RefreshTokenRejected) for outcome in outcomes)
    assert recorder.count("access_token") == 1


async def test_rejection_is_asked_again_after_a_cooldown(
    make_client: Callable[..., CellectClient], emulator: Emulator, clock: Clock, recorder: Recorder
) -> None:
    """A minute after a rejection the token endpoint is asked again (the vendor may recover)."""
    token = emulator.issue_refresh_token(expires_at=clock.now() + timedelta(hours=1))
    client = make_client(refresh_token=SecretStr(token))
    clock.advance(3600)
    with pytest.raises(RefreshTokenRejected):
        await client.portfolio_overview()
    with pytest.raises(RefreshTokenRejected):
        await client.portfolio_overview()
    assert recorder.count("access_token") == 1
    clock.advance(61)
    with pytest.raises(RefreshTokenRejected):
        await client.portfolio_overview()
    assert recorder.count("access_token") == 2


async def test_empty_refresh_token_is_rejected_with_its_code(
    make_client: Callable[..., CellectClient], recorder: Recorder
) -> None:
    """An empty refresh token is refused by the endpoint (400/30069) as a rejection too."""
    client = make_client(refresh_token=SecretStr(""))
    with pytest.raises(RefreshTokenRejected) as caught:
        await client.portfolio_overview()
    assert (caught.value.code, caught.value.http_status) == (30069, 400)
    assert recorder.sleeps == []


async def test_client_from_settings(
    http: httpx.AsyncClient, clock: Clock, refresh_token: str, recorder: Recorder
) -> None:
    """from_settings builds a working client from CELLECT_ settings."""
    settings = Settings(
        api_url=BASE_URL + "/", token_url=BASE_URL, refresh_token=SecretStr(refresh_token)
    )
    client = CellectClient.from_settings(
        settings, http, clock, sleep=recorder.sleep, on_request=recorder.on_request
    )
    assert len(await client.portfolio_overview()) == SITES
    assert recorder.count("access_token") == 1


async def test_from_settings_needs_a_refresh_token(http: httpx.AsyncClient, clock: Clock) -> None:
    """Without CELLECT_REFRESH_TOKEN the client cannot be built, and says which variable."""
    settings = Settings(refresh_token=None)
    with pytest.raises(ValueError, match="CELLECT_REFRESH_TOKEN"):
        CellectClient.from_settings(settings, http, clock)
