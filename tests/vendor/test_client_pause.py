"""One budget for the whole client: a Retry-After pauses every request, waited out on the
emulated clock, and a pause longer than a call's retry budget fails that call unsent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from receiver.cellect.clock import Clock
from receiver.metrics.registry import Metrics
from receiver.vendor.client import CellectClient, RetriesExhausted, Throttled
from tests.support.door import Door
from tests.support.stack import until
from tests.support.vendor import SITES, Control, Recorder

pytestmark = pytest.mark.anyio


async def test_a_429_pauses_every_request_of_the_client(
    make_client: Callable[..., CellectClient],
    clock: Clock,
    control: Control,
    door: Door,
    recorder: Recorder,
) -> None:
    """Fifty concurrent site requests during a 429's Retry-After: only the one that met it
    went out; when the pause ends on the clock, all fifty proceed and succeed."""
    recorder.clock = clock  # the client's waits pass on the emulated clock
    client = make_client()
    await client.portfolio_overview()
    await control.fault("master-data", rate_limit_rate=1.0, retry_after_s=30)
    door.clear()
    calls = [asyncio.create_task(client.site_information(1))]
    await until(lambda: door.count("master-data", 429) == 1, what="the first 429")
    calls += [asyncio.create_task(client.site_information(1 + i % SITES)) for i in range(49)]
    await until(lambda: recorder.sleeping == 50, what="fifty requests waiting")
    assert door.seen == [("master-data", 429)]
    assert client.paused_until == clock.now() + timedelta(seconds=30)

    await control.clear_faults()
    clock.advance(30)
    sites = await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
    assert [site.site_id for site in sites] == [1] + [1 + i % SITES for i in range(49)]
    assert door.count("master-data", 200) == 50
    assert client.paused_until is None


async def test_the_pause_is_exported_and_counted(
    make_client: Callable[..., CellectClient],
    clock: Clock,
    control: Control,
    recorder: Recorder,
) -> None:
    """While paused, the pause's end is exported; it disappears after, and the paused
    seconds and the retry it caused are counted."""
    metrics = Metrics(CollectorRegistry(), now=clock.timestamp)
    recorder.clock = clock
    client = make_client(observer=metrics.client)
    await client.portfolio_overview()
    await control.fault("master-data", rate_limit_rate=1.0, retry_after_s=20)
    call = asyncio.create_task(client.site_information(1))
    await until(lambda: recorder.sleeping == 1, what="the call waiting")
    sample = metrics.registry.get_sample_value
    until_ts = (clock.now() + timedelta(seconds=20)).timestamp()
    assert sample("cellect_api_paused_until_timestamp_seconds") == until_ts
    assert sample("cellect_api_paused_seconds_total") == 20
    labels = {"endpoint": "site_information", "reason": "rate_limited"}
    assert sample("cellect_api_retries_total", labels) == 1

    await control.clear_faults()
    clock.advance(20)
    await asyncio.wait_for(call, timeout=10)
    assert sample("cellect_api_paused_until_timestamp_seconds") is None
    assert sample("cellect_api_paused_seconds_total") == 20


async def test_a_pause_beyond_the_call_budget_fails_the_call_unsent(
    make_client: Callable[..., CellectClient],
    clock: Clock,
    control: Control,
    door: Door,
    recorder: Recorder,
) -> None:
    """A Retry-After of 120 s with a 60 s budget: the call that met it gives up, and the
    client's next calls fail at once as Throttled, without reaching the emulator, until
    the pause has passed."""
    metrics = Metrics(CollectorRegistry(), now=clock.timestamp)
    client = make_client(retry_max_s=60, observer=metrics.client)
    await client.portfolio_overview()
    await control.fault("master-data", rate_limit_rate=1.0, retry_after_s=120)
    with pytest.raises(RetriesExhausted):
        await client.site_information(1)
    door.clear()
    await control.clear_faults()
    for site_id in range(1, SITES + 1):
        with pytest.raises(Throttled) as caught:
            await client.site_information(site_id)
        assert caught.value.until == clock.now() + timedelta(seconds=120)
    assert door.seen == []
    assert recorder.sleeps == []
    labels = {"endpoint": "site_information", "reason": "paused"}
    assert metrics.registry.get_sample_value("cellect_api_requests_not_sent_total", labels) == 3

    clock.advance(120)
    assert (await client.site_information(1)).site_id == 1
    assert door.seen == [("master-data", 200)]


async def test_a_pause_holds_the_token_request_too(
    make_client: Callable[..., CellectClient],
    clock: Clock,
    control: Control,
    door: Door,
    recorder: Recorder,
) -> None:
    """A request that needs a new token during a pause asks for it only after the pause:
    the token service is the same vendor."""
    recorder.clock = clock
    client = make_client()
    await control.fault("access-token", rate_limit_rate=1.0, retry_after_s=10)
    call = asyncio.create_task(client.portfolio_overview())
    await until(lambda: recorder.sleeping == 1, what="the token request waiting")
    others = [asyncio.create_task(client.site_information(1)) for _ in range(5)]
    for _ in range(50):  # let them run as far as they can (they join the renewal)
        await asyncio.sleep(0)
    assert door.seen == [("access-token", 429)]
    await control.clear_faults()
    clock.advance(10)
    await asyncio.wait_for(asyncio.gather(call, *others), timeout=10)
    assert door.count("access-token") == 2
    assert door.count("master-data", 200) == 6
