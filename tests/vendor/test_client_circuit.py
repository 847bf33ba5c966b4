"""The circuit breaker against the emulator's outages: it opens after N failures in a row,
refuses requests without sending them, lets one probe through per cool-down, and closes
on the probe's answer. What went out is counted at the emulator's door."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from receiver.cellect.clock import Clock
from receiver.cellect.errors import SiteNotFound
from receiver.metrics.registry import Metrics
from receiver.vendor.client import (
    CellectClient,
    CellectTransportError,
    CircuitOpen,
    CircuitState,
    RetriesExhausted,
)
from tests.support.door import Door
from tests.support.vendor import SITES, Control, FlakyNetwork

pytestmark = pytest.mark.anyio
COOLDOWN_S = 30.0


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics(CollectorRegistry(), now=clock.timestamp)


@pytest.fixture
def client(make_client: Callable[..., CellectClient], metrics: Metrics) -> CellectClient:
    """A client with the default threshold (5) and a 30 s cool-down, observed by metrics."""
    return make_client(circuit_cooldown_s=COOLDOWN_S, observer=metrics.client)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def concurrently(client: CellectClient, n: int = 20) -> list[object]:
    """`n` concurrent site requests; their results or errors."""
    calls = (client.site_information(1 + i % SITES) for i in range(n))
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def open_circuit(client: CellectClient, control: Control) -> None:
    """Warm the token, then an outage: one call's five failing attempts open the circuit."""
    await client.portfolio_overview()
    await control.fault("*", error_rate=1.0)
    with pytest.raises(RetriesExhausted):
        await client.site_information(1)


async def test_an_outage_opens_the_circuit_and_requests_fail_fast(
    client: CellectClient, control: Control, door: Door, metrics: Metrics, clock: Clock
) -> None:
    """After five 5xx in a row the circuit is open: twenty more requests fail at once with
    CircuitOpen and none of them reaches the emulator."""
    await client.portfolio_overview()
    await control.fault("*", error_rate=1.0)
    door.clear()
    with pytest.raises(RetriesExhausted):
        await client.site_information(1)
    assert door.count("master-data", 500) == 5
    assert client.circuit_state is CircuitState.OPEN

    door.clear()
    outcomes = await concurrently(client)
    assert all(isinstance(o, CircuitOpen) for o in outcomes), outcomes
    assert door.seen == []
    refused = outcomes[0]
    assert isinstance(refused, CircuitOpen)
    assert refused.until == clock.now() + timedelta(seconds=COOLDOWN_S)
    assert sample(metrics, "cellect_api_circuit_state") == 2
    assert sample(metrics, "cellect_api_circuit_opens_total") == 1
    not_sent = sample(
        metrics, "cellect_api_requests_not_sent_total",
        endpoint="site_information", reason="circuit_open",
    )  # fmt: skip
    assert not_sent == 20


async def test_after_the_cooldown_one_probe_at_a_time(
    client: CellectClient, control: Control, door: Door, clock: Clock, metrics: Metrics
) -> None:
    """A cool-down later, of twenty concurrent requests exactly one goes out as the probe;
    its failure opens the circuit for another cool-down."""
    await open_circuit(client, control)
    clock.advance(COOLDOWN_S - 1)
    door.clear()
    assert all(isinstance(o, CircuitOpen) for o in await concurrently(client))
    assert door.seen == []

    clock.advance(1)
    outcomes = await concurrently(client)
    assert door.seen == [("master-data", 500)]
    assert all(isinstance(o, CircuitOpen) for o in outcomes), outcomes
    assert client.circuit_state is CircuitState.OPEN
    assert sample(metrics, "cellect_api_circuit_opens_total") == 2
    door.clear()
    assert all(isinstance(o, CircuitOpen) for o in await concurrently(client))
    assert door.seen == []


async def test_an_answer_to_the_probe_closes_the_circuit(
    client: CellectClient, control: Control, door: Door, clock: Clock, metrics: Metrics
) -> None:
    """Once the vendor is back, the probe after the cool-down succeeds, the circuit closes,
    and every request goes out again."""
    await open_circuit(client, control)
    await control.clear_faults()
    clock.advance(COOLDOWN_S)
    door.clear()
    assert (await client.site_information(2)).site_id == 2
    assert client.circuit_state is CircuitState.CLOSED
    assert sample(metrics, "cellect_api_circuit_state") == 0
    outcomes = await concurrently(client)
    assert [getattr(o, "site_id", o) for o in outcomes] == [1 + i % SITES for i in range(20)]
    assert door.count("master-data", 200) == 21


async def test_a_probe_that_needs_a_token_takes_its_token_request_along(
    client: CellectClient, control: Control, door: Door, clock: Clock
) -> None:
    """After an outage longer than the token's life, the probe's own token request goes
    out with it (not refused as a second probe), and their answers close the circuit."""
    await open_circuit(client, control)
    await control.clear_faults()
    clock.advance(7 * 3600)
    door.clear()
    assert (await client.site_information(3)).site_id == 3
    assert door.seen == [("access-token", 200), ("master-data", 200)]
    assert client.circuit_state is CircuitState.CLOSED


async def test_throttling_and_client_errors_are_not_failures(
    client: CellectClient, control: Control, door: Door
) -> None:
    """429s and 404s are the API answering: however many in a row, the circuit stays
    closed and every request goes out."""
    await client.portfolio_overview()
    await control.fault("master-data", rate_limit_rate=1.0, retry_after_s=1)
    for _ in range(3):
        with pytest.raises(RetriesExhausted):
            await client.site_information(1)
    for _ in range(10):
        with pytest.raises(SiteNotFound):
            await client.availability_events(999)
    assert client.circuit_state is CircuitState.CLOSED
    assert door.count("master-data", 429) == 15
    assert door.count("events", 404) == 10


async def test_timeouts_open_the_circuit_too(
    client: CellectClient, network: FlakyNetwork, door: Door
) -> None:
    """Five timeouts in a row (no answer at all) open the circuit like five 5xx."""
    await client.portfolio_overview()
    network.failures = 100
    with pytest.raises(CellectTransportError):
        await client.site_information(1)
    assert network.failures == 95
    network.failures = 0
    door.clear()
    with pytest.raises(CircuitOpen):
        await client.site_information(1)
    assert door.seen == []


async def test_an_answer_between_failures_starts_the_count_again(
    make_client: Callable[..., CellectClient], control: Control
) -> None:
    """Failures must come in a row: two calls of three failed attempts each, with a
    success between them, leave the circuit closed."""
    client = make_client(retry_attempts=3)
    await client.portfolio_overview()
    for _ in range(2):
        await control.fault("master-data", error_rate=1.0)
        with pytest.raises(RetriesExhausted):
            await client.site_information(1)
        await control.clear_faults()
        await client.portfolio_overview()
    assert client.circuit_state is CircuitState.CLOSED
