"""Webhook delivery faults (drop, delay, duplicate, reorder) and seeded determinism."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus
from receiver.emulator.state import StatusChange, Subscription
from receiver.emulator.webhook_sender import WebhookFaults, WebhookSender
from tests.support.sinks import HttpSink, RecordedRequest

T0 = datetime.now(UTC).replace(microsecond=0)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def changes(count: int) -> list[StatusChange]:
    """One change per site, so each becomes its own delivery (sites 1..count)."""
    start = T0 + timedelta(hours=1)
    return [
        StatusChange(
            site, 1, site, start, start + timedelta(minutes=15), ImplementationStatus(1), T0
        )
        for site in range(1, count + 1)
    ]


def make_sender(
    clock: Clock, http: httpx.AsyncClient, url: str, faults: WebhookFaults, seed: int = 3
) -> WebhookSender:
    subscription = Subscription(1, 1, url, signing_secret=SECRET)
    sender = WebhookSender(
        clock=clock, subscriptions=lambda _: [subscription], rng=random.Random(seed), http=http
    )
    sender.set_faults(faults)
    return sender


def sites(requests: list[RecordedRequest]) -> list[int]:
    return [int(r.json()["siteId"]) for r in requests]


@pytest.mark.anyio
async def test_drop_never_sends(sink: HttpSink, http: httpx.AsyncClient) -> None:
    """With drop_rate 1 nothing is sent, and every drop is in the attempts log."""
    sender = make_sender(Clock.frozen(T0), http, sink.url("/h"), WebhookFaults(drop_rate=1.0))
    sender.publish(1, changes(4))
    assert await sender.deliver_due() == 0
    assert sink.requests == []
    assert sender.dropped == 4
    assert [a.fault for a in sender.attempts] == ["dropped"] * 4


@pytest.mark.anyio
async def test_partial_drop_sends_the_rest(sink: HttpSink, http: httpx.AsyncClient) -> None:
    """With drop_rate 0.5 some deliveries vanish and the others arrive once each."""
    sender = make_sender(Clock.frozen(T0), http, sink.url("/h"), WebhookFaults(drop_rate=0.5))
    sender.publish(1, changes(20))
    await sender.deliver_due()
    assert 0 < sender.dropped < 20
    assert len(sink.requests) == 20 - sender.dropped
    assert len(set(sites(sink.requests))) == len(sink.requests)


@pytest.mark.anyio
async def test_delay_sends_delay_s_of_emulated_time_later(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """A delay fault holds each delivery back until delay_s of emulated time passed."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, sink.url("/h"), WebhookFaults(delay_s=30.0))
    sender.publish(1, changes(2))
    await sender.deliver_due()
    clock.advance(29)
    await sender.deliver_due()
    assert sink.requests == []
    clock.advance(1)
    assert await sender.deliver_due() == 2


@pytest.mark.anyio
async def test_duplicate_sends_twice_with_the_same_id(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """A duplicate repeats the delivery: same webhook-id, same body, valid signature."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, sink.url("/h"), WebhookFaults(duplicate_rate=1.0))
    sender.publish(1, changes(2))
    assert await sender.deliver_due() == 4
    first, twin = sink.requests[0], sink.requests[1]
    assert first.headers["webhook-id"] == twin.headers["webhook-id"]
    assert first.body == twin.body
    assert Webhook(SECRET).verify(twin.body, twin.headers)["siteId"] == 1
    assert len({r.headers["webhook-id"] for r in sink.requests}) == 2


@pytest.mark.anyio
async def test_recovery_with_duplicates_on_delivers_each_at_least_once(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """A failing receiver that recovers gets every delivery, duplicates only as faults add."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, sink.url("/h"), WebhookFaults(duplicate_rate=0.5))
    sink.fail_with(500)
    sender.publish(1, changes(10))
    await sender.deliver_due()
    sink.fail_with(None)
    clock.advance(2)
    await sender.deliver_due()
    duplicates = sum(1 for a in sender.attempts if a.fault == "duplicated")
    assert 0 < duplicates < 10
    assert len(sink.accepted) == 10 + duplicates
    assert sorted(set(sites(sink.accepted))) == list(range(1, 11))


@pytest.mark.anyio
async def test_reorder_shuffles_a_batch_of_due_deliveries(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """Without reorder deliveries go out in publish order; with it, shuffled, none lost."""
    clock = Clock.frozen(T0)
    in_order = make_sender(clock, http, sink.url("/h"), WebhookFaults())
    in_order.publish(1, changes(8))
    await in_order.deliver_due()
    assert sites(sink.requests) == list(range(1, 9))
    shuffled = make_sender(clock, http, sink.url("/r"), WebhookFaults(reorder=True))
    shuffled.publish(1, changes(8))
    await shuffled.deliver_due()
    received = sites([r for r in sink.requests if r.path == "/r"])
    assert sorted(received) == list(range(1, 9))
    assert received != list(range(1, 9))


async def _run_scenario(url: str, http: httpx.AsyncClient, seed: int) -> WebhookSender:
    clock = Clock.frozen(T0)
    faults = WebhookFaults(drop_rate=0.2, duplicate_rate=0.3, reorder=True, delay_s=5.0)
    faults.delay_rate = 0.5
    sender = make_sender(clock, http, url, faults, seed=seed)
    for round_ in range(3):
        sender.publish(1, changes(6))
        await sender.deliver_due()
        clock.advance(5 + round_)
        await sender.deliver_due()
    return sender


@pytest.mark.anyio
async def test_same_seed_same_delivery_sequence(http: httpx.AsyncClient) -> None:
    """Two senders with one seed and a frozen clock send identical ids, order and bodies."""
    with HttpSink() as first, HttpSink() as second, HttpSink() as third:
        await _run_scenario(first.url("/h"), http, seed=11)
        await _run_scenario(second.url("/h"), http, seed=11)
        await _run_scenario(third.url("/h"), http, seed=12)
    seq = [[(r.headers["webhook-id"], r.body) for r in s.requests] for s in (first, second, third)]
    assert seq[0] == seq[1]
    assert len(seq[0]) > 0
    assert seq[0] != seq[2]
