"""The webhook sender's run loop: wakes on publish (from any thread) and on clock advances."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus
from receiver.emulator.state import StatusChange, Subscription
from receiver.emulator.webhook_sender import WebhookSender
from tests.support.sinks import HttpSink
from tests.support.stack import until

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def change(site: int) -> StatusChange:
    start = T0 + timedelta(hours=1)
    return StatusChange(
        site, 1, site, start, start + timedelta(minutes=15), ImplementationStatus(2), T0
    )


def make_sender(clock: Clock, url: str) -> WebhookSender:
    subscription = Subscription(1, 1, url)
    # No http client: the sender creates its own and closes it when run() ends.
    return WebhookSender(clock=clock, subscriptions=lambda _: [subscription], rng=random.Random(1))


@pytest.mark.anyio
async def test_run_delivers_what_another_thread_publishes(sink: HttpSink) -> None:
    """publish() from a foreign thread wakes the loop, which delivers at once."""
    sender = make_sender(Clock.frozen(T0), sink.url("/h"))
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    publisher = threading.Thread(target=sender.publish, args=(1, [change(1), change(2)]))
    publisher.start()
    publisher.join(timeout=5)
    received = await sink.until(2)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert sorted(r.json()["siteId"] for r in received) == [1, 2]
    assert sender.pending == 0


@pytest.mark.anyio
async def test_run_retries_when_the_clock_is_advanced(sink: HttpSink) -> None:
    """With a frozen clock a retry waits until the clock is advanced past its due time."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, sink.url("/h"))
    sink.fail_with(500)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    sender.publish(1, [change(1)])
    await sink.until(1)
    sink.fail_with(None)
    # The sink has the request; the sender queues the retry once it has read the 500.
    await until(lambda: sender.pending == 1, what="the retry queued")
    clock.advance(2)
    await sink.until(2)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert [r.status for r in sink.requests] == [500, 200]
    assert sender.pending == 0


@pytest.mark.anyio
async def test_run_stops_promptly_when_idle() -> None:
    """An idle loop returns soon after stop is set."""
    sender = make_sender(Clock.frozen(T0), "http://127.0.0.1:9/unused")
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert task.done()
    assert task.exception() is None


@pytest.mark.anyio
async def test_a_stop_during_a_burst_leaves_the_rest_queued(sink: HttpSink) -> None:
    """Stop set while deliveries are due: the sender attempts none of them (they stay
    queued), so a burst of retries at a high clock speed cannot hold its shutdown."""
    sender = make_sender(Clock.frozen(T0), sink.url("/h"))
    for site in range(1, 6):
        sender.publish(site, [change(site)])
    stop = asyncio.Event()
    stop.set()
    assert await sender.deliver_due(stop) == 0
    assert (sender.pending, len(sink.requests)) == (5, 0)
    assert await sender.deliver_due() == 5
    assert (sender.pending, len(sink.requests)) == (0, 5)
    await sender.aclose()
