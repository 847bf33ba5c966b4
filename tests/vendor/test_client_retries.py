"""Retries against the emulator's injected faults: backoff on 5xx, Retry-After on 429,
transport errors, recovery once the faults stop, and the bounds on attempts and time."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from receiver.cellect.clock import Clock
from receiver.cellect.errors import SiteDataFetchFailed, SiteNotFound
from receiver.vendor.client import CellectClient, CellectTransportError, RetriesExhausted
from tests.support.vendor import Control, FlakyNetwork, Recorder

pytestmark = pytest.mark.anyio


async def test_5xx_is_retried_with_growing_backoff(
    client: CellectClient, control: Control, recorder: Recorder
) -> None:
    """Injected 500s are retried with exponential backoff until the attempts run out."""
    await control.fault("master-data", error_rate=1.0)
    with pytest.raises(RetriesExhausted) as caught:
        await client.portfolio_overview()
    error = caught.value
    assert (error.code, error.http_status, error.attempts) == (30003, 500, 5)
    assert isinstance(error.last_error, SiteDataFetchFailed)
    assert error.__cause__ is error.last_error
    assert recorder.count("portfolio_overview") == 5
    assert len(recorder.sleeps) == 4
    for attempt, delay in enumerate(recorder.sleeps, start=1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling


async def test_recovery_once_the_faults_stop(
    client: CellectClient, control: Control, recorder: Recorder
) -> None:
    """A call that met 500s succeeds as soon as the vendor answers again."""
    await control.fault("*", error_rate=1.0)
    recorder.on_sleep = control.heal_after(2)
    sites = await client.portfolio_overview()
    assert len(sites) > 0
    assert len(recorder.sleeps) == 2
    # The token endpoint failed too, and was retried within its own call.
    assert recorder.requests[:3] == [("access_token", "500")] * 2 + [("access_token", "200")]
    assert recorder.requests[-1] == ("portfolio_overview", "200")


async def test_429_honours_retry_after(
    client: CellectClient, control: Control, recorder: Recorder
) -> None:
    """A 429 waits exactly the Retry-After seconds, not the client's own backoff."""
    await client.portfolio_overview()
    await control.fault("master-data", rate_limit_rate=1.0, retry_after_s=7)
    recorder.on_sleep = control.heal_after(2)
    await client.site_information(1)
    assert recorder.sleeps == [7.0, 7.0]
    codes = [code for name, code in recorder.requests if name == "site_information"]
    assert codes == ["429", "429", "200"]


async def test_retry_after_beyond_the_time_budget_gives_up_at_once(
    make_client: Callable[..., CellectClient], control: Control, recorder: Recorder
) -> None:
    """A Retry-After longer than the remaining budget ends the call without sleeping."""
    client = make_client(retry_max_s=30)
    await control.fault("master-data", rate_limit_rate=1.0, retry_after_s=120)
    with pytest.raises(RetriesExhausted) as caught:
        await client.portfolio_overview()
    assert (caught.value.http_status, caught.value.attempts) == (429, 1)
    assert recorder.sleeps == []


async def test_total_time_bounds_the_retries(
    make_client: Callable[..., CellectClient], control: Control, recorder: Recorder
) -> None:
    """Backoff sleeps never add up past retry_max_s, whatever retry_attempts allows."""
    client = make_client(retry_attempts=20, retry_max_s=10)
    await control.fault("master-data", error_rate=1.0)
    with pytest.raises(RetriesExhausted) as caught:
        await client.portfolio_overview()
    assert sum(recorder.sleeps) <= 10
    assert caught.value.attempts < 20


async def test_client_errors_are_not_retried(client: CellectClient, recorder: Recorder) -> None:
    """A 4xx answer (here 404/30085 for an unknown site) is raised at once, typed."""
    with pytest.raises(SiteNotFound) as caught:
        await client.availability_events(999)
    assert (caught.value.code, caught.value.http_status) == (30085, 404)
    assert recorder.count("availability") == 1
    assert recorder.sleeps == []


async def test_timeouts_are_retried(
    client: CellectClient, network: FlakyNetwork, recorder: Recorder
) -> None:
    """Timeouts are retried with backoff; the call succeeds once the network answers."""
    await client.portfolio_overview()
    network.failures = 2
    await client.portfolio_overview()
    codes = [code for name, code in recorder.requests if name == "portfolio_overview"]
    assert codes == ["200", "timeout", "timeout", "200"]
    assert len(recorder.sleeps) == 2


async def test_persistent_timeouts_raise_a_transport_error(
    client: CellectClient, network: FlakyNetwork, recorder: Recorder
) -> None:
    """Timeouts on every attempt end as CellectTransportError, raised from the httpx error."""
    await client.portfolio_overview()
    network.failures = 100
    with pytest.raises(CellectTransportError) as caught:
        await client.site_information(1)
    assert (caught.value.kind, caught.value.attempts) == ("timeout", 5)
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_dropped_connections_are_retried(
    client: CellectClient, control: Control, recorder: Recorder
) -> None:
    """A connection the emulator cuts after processing is retried like any transport error."""
    await client.portfolio_overview()
    await control.fault("master-data", drop_rate=1.0)
    recorder.on_sleep = control.heal_after(1)
    await client.portfolio_overview()
    codes = [code for name, code in recorder.requests if name == "portfolio_overview"]
    assert codes == ["200", "error", "200"]


async def test_connection_refused_is_a_transport_error(clock: Clock, recorder: Recorder) -> None:
    """Nothing listening on the vendor's port: CellectTransportError("error") after retries."""
    async with httpx.AsyncClient() as http:
        client = CellectClient(
            http,
            api_url="http://127.0.0.1:9",
            token_url="http://127.0.0.1:9",
            refresh_token=SecretStr("rt"),
            clock=clock,
            retry_attempts=3,
            sleep=recorder.sleep,
            on_request=recorder.on_request,
        )
        with pytest.raises(CellectTransportError) as caught:
            await client.portfolio_overview()
    assert (caught.value.endpoint, caught.value.kind, caught.value.attempts) == (
        "access_token",
        "error",
        3,
    )
    assert recorder.requests == [("access_token", "error")] * 3
