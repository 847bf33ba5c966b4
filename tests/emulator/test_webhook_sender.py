"""The webhook sender against a real HTTP sink: batching, retries, credentials, signing."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus
from receiver.emulator.state import StatusChange, Subscription
from receiver.emulator.webhook_sender import WebhookSender
from receiver.runtime.redaction import redact_url
from tests.support.sinks import HttpSink

# Real now: standardwebhooks verifies the timestamp against the wall clock (±5 min).
T0 = datetime.now(UTC).replace(microsecond=0)


def change(site: int, post: int, entry: int, status: int = 1, hour: int = 1) -> StatusChange:
    start = T0 + timedelta(hours=hour)
    return StatusChange(
        site, post, entry, start, start + timedelta(minutes=15), ImplementationStatus(status), T0
    )


def make_sender(
    clock: Clock, http: httpx.AsyncClient, *subs: Subscription, seed: int = 7
) -> WebhookSender:
    by_partner = {s.partner_id: [x for x in subs if x.partner_id == s.partner_id] for s in subs}
    return WebhookSender(
        clock=clock,
        subscriptions=lambda partner: by_partner.get(partner, []),
        rng=random.Random(seed),
        http=http,
        max_attempts=4,
        base_backoff_s=2.0,
    )


@pytest.mark.anyio
async def test_changes_are_batched_per_site_and_post(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """One publish yields one payload per (site, post), each listing its entries in order."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, Subscription(1, 1, sink.url("/hook")))
    sender.publish(
        1, [change(1, 10, 1), change(2, 20, 2), change(1, 10, 3, hour=2), change(1, 11, 4)]
    )
    assert sender.pending == 3
    assert await sender.deliver_due() == 3
    bodies = [r.json() for r in sink.requests]
    assert [b["siteId"] for b in bodies] == [1, 2, 1]
    assert [len(b["schedule"]) for b in bodies] == [2, 1, 1]
    first = bodies[0]["schedule"][0]
    assert first == {
        "start": (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (T0 + timedelta(hours=1, minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": 1,
    }
    assert sink.requests[0].headers["content-type"] == "application/json"
    assert sender.pending == 0


@pytest.mark.anyio
async def test_each_enabled_subscription_of_the_partner_gets_a_delivery(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """Every enabled subscription of the publishing partner is called; others are not."""
    clock = Clock.frozen(T0)
    subs = (
        Subscription(1, 1, sink.url("/a")),
        Subscription(2, 1, sink.url("/b")),
        Subscription(3, 1, sink.url("/off"), enabled=False),
        Subscription(4, 2, sink.url("/other-partner")),
    )
    sender = make_sender(clock, http, *subs)
    sender.publish(1, [change(1, 1, 1)])
    await sender.deliver_due()
    assert sorted(r.path for r in sink.requests) == ["/a", "/b"]


@pytest.mark.anyio
async def test_failures_are_retried_with_backoff_in_emulated_time(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """A 500 is retried 2 s, then 4 s of emulated time later; nothing is sent before that."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, Subscription(1, 1, sink.url("/hook")))
    sink.fail_with(500)
    sender.publish(1, [change(1, 1, 1)])
    assert await sender.deliver_due() == 0
    assert sender.next_due() == T0 + timedelta(seconds=2)
    clock.advance(1.9)
    await sender.deliver_due()
    assert len(sink.requests) == 1
    clock.advance(0.1)
    await sender.deliver_due()
    assert len(sink.requests) == 2
    assert sender.next_due() == T0 + timedelta(seconds=6)
    sink.fail_with(None)
    clock.advance(4)
    assert await sender.deliver_due() == 1
    assert [a.status_code for a in sender.attempts] == [500, 500, 200]
    assert [a.attempt for a in sender.attempts] == [1, 2, 3]
    assert sender.pending == 0


@pytest.mark.anyio
async def test_a_receiver_that_is_down_then_recovers_gets_each_delivery_once(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """Connection refused is retried; after recovery each delivery arrives exactly once."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, Subscription(1, 1, sink.url("/hook")))
    sink.stop()
    sender.publish(1, [change(1, 1, 1), change(2, 2, 2)])
    sender.publish(1, [change(3, 3, 3)])
    assert await sender.deliver_due() == 0
    assert all(a.error and "ConnectError" in a.error for a in sender.attempts)
    sink.start()
    sink.fail_with(503)
    clock.advance(2)
    await sender.deliver_due()
    sink.fail_with(None)
    clock.advance(4)
    assert await sender.deliver_due() == 3
    assert len(sink.accepted) == 3
    assert sorted(r.json()["siteId"] for r in sink.accepted) == [1, 2, 3]
    assert sender.pending == 0


@pytest.mark.anyio
async def test_gives_up_after_max_attempts(sink: HttpSink, http: httpx.AsyncClient) -> None:
    """After max_attempts failures the delivery is dropped from the queue and counted."""
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, Subscription(1, 1, sink.url("/hook")))
    sink.fail_with(500)
    sender.publish(1, [change(1, 1, 1)])
    for _ in range(6):
        await sender.deliver_due()
        clock.advance(60)
    assert len(sink.requests) == 4
    assert sender.given_up == 1
    assert sender.pending == 0


@pytest.mark.anyio
async def test_token_and_basic_credentials_arrive_and_are_redacted(
    sink: HttpSink, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """`?token=` and `user:pass@` reach the receiver; the attempts log and logs hide them."""
    caplog.set_level(logging.DEBUG)
    clock = Clock.frozen(T0)
    basic_url = sink.url("/basic").replace("http://", "http://mon:s3cr%40t-pw@")
    subs = (Subscription(1, 1, sink.url("/tok?token=tok-SECRET-1")), Subscription(2, 1, basic_url))
    sender = make_sender(clock, http, *subs)
    sink.fail_with(500)  # failures are logged too
    sender.publish(1, [change(1, 1, 1)])
    await sender.deliver_due()
    sink.fail_with(None)
    clock.advance(2)
    await sender.deliver_due()
    by_path = {r.path: r for r in sink.accepted}
    assert by_path["/tok"].query == "token=tok-SECRET-1"
    expected = httpx.BasicAuth("mon", "s3cr@t-pw")._auth_header
    assert by_path["/basic"].headers["authorization"] == expected
    logged = caplog.text + repr(sender.attempts)
    assert "tok-SECRET-1" not in logged
    assert "s3cr" not in logged
    assert {a.url for a in sender.attempts} == {
        sink.url("/tok?token=***"),
        sink.url("/basic").replace("http://", "http://mon:***@"),
    }


def test_redact_url_hides_every_query_value_and_the_password() -> None:
    """Query values and the userinfo password are replaced; the rest of the URL stays."""
    assert redact_url("https://u:p@h.example:8443/x/y?token=abc&a=1#f") == (
        "https://u:***@h.example:8443/x/y?token=***&a=***#f"
    )
    assert redact_url("http://h/x") == "http://h/x"


@pytest.mark.anyio
async def test_standard_webhooks_signature_verifies(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """A signed delivery verifies with the secret; retries keep the webhook-id."""
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    clock = Clock.frozen(T0)
    sender = make_sender(clock, http, Subscription(1, 1, sink.url("/hook"), signing_secret=secret))
    sink.fail_with(500)
    sender.publish(1, [change(1, 1, 1)])
    await sender.deliver_due()
    sink.fail_with(None)
    clock.advance(2)
    await sender.deliver_due()
    first, second = sink.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-id"].startswith("msg_")
    assert second.headers["webhook-timestamp"] == str(int((T0 + timedelta(seconds=2)).timestamp()))
    assert Webhook(secret).verify(second.body, second.headers)["siteId"] == 1
    assert "whsec" not in repr(sender.attempts)


@pytest.mark.anyio
async def test_unsigned_deliveries_carry_no_signature_headers(
    sink: HttpSink, http: httpx.AsyncClient
) -> None:
    """Without a signing secret, no webhook-* headers are sent."""
    sender = make_sender(Clock.frozen(T0), http, Subscription(1, 1, sink.url("/hook")))
    sender.publish(1, [change(1, 1, 1)])
    await sender.deliver_due()
    assert not any(h.startswith("webhook-") for h in sink.requests[0].headers)
