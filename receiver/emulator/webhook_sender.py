"""The emulated Cellect cloud's webhook sender: status changes → partner subscriptions.

`publish()` (sync, thread-safe) batches status changes per (site, post) into the DESIGN
payload `{"siteId", "schedule": [{"start", "end", "status"}]}` and queues one delivery per
enabled subscription of the partner. `deliver_due()` attempts every delivery due at the
clock's now, one after another in due order, so a seed and a frozen clock give the same
sequence of requests. A failure (non-2xx, refused, timeout) is retried with exponential
backoff in *emulated* time, up to `max_attempts`; `run()` loops deliver → wait until the
next due time, new work, or stop.

Credentials ride in the subscription URL: `?token=...` is sent as is; `user:pass@` userinfo
is stripped from the URL and sent as an `Authorization: Basic` header (explicitly, so the
password is never part of a URL that gets logged). Optional Standard Webhooks signing with
the subscription's `signing_secret`: `webhook-id` is fixed per delivery (retries and
fault-induced duplicates repeat it), `webhook-timestamp` is the emulated clock at the attempt.

Faults on demand (`set_faults`), drawn from the seeded rng: drop (never sent), delay (due
`delay_s` of emulated time later), duplicate (queued twice), reorder (each batch of due
deliveries is shuffled). Secrets never reach logs or `attempts`: URLs are redacted (userinfo
password and every query value; receiver.runtime.redaction), and httpx's own request
log line is redacted by a filter.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import format_timestamp
from receiver.emulator.state import StatusChange, Subscription
from receiver.runtime import waiting
from receiver.runtime.redaction import (
    install_log_redaction,
    redact_url,
    scrub,
    url_secrets,
)

logger = logging.getLogger(__name__)

# Real seconds: a receiver that hangs must not stall the sender for long.
DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
# Bounded real wait of the run loop when nothing is pending.
_IDLE_WAIT_S = 1.0
_MAX_ATTEMPT_LOG = 10_000


@dataclass
class WebhookFaults:
    """Delivery faults; rates are probabilities per delivery, drawn from the sender's rng."""

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder: bool = False
    delay_s: float = 0.0
    delay_rate: float = 1.0  # share of deliveries that get `delay_s` (all by default)


@dataclass(frozen=True)
class DeliveryAttempt:
    """One HTTP attempt (or a fault's verdict), as the attempts log keeps it, secrets redacted."""

    delivery_id: str
    subscription_id: int
    site_id: int
    url: str
    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class _Delivery:
    delivery_id: str
    seq: int
    subscription: Subscription
    site_id: int
    body: bytes
    due: datetime
    attempts: int = 0
    secrets: tuple[str, ...] = field(default=())


def batch_payloads(changes: Sequence[StatusChange]) -> list[dict[str, object]]:
    """One payload per (site, post), in order of first appearance, entries as given."""
    groups: dict[tuple[int, int], list[StatusChange]] = {}
    for change in changes:
        groups.setdefault((change.site_id, change.post_id), []).append(change)
    return [
        {
            "siteId": site_id,
            "schedule": [
                {
                    "start": format_timestamp(c.start),
                    "end": format_timestamp(c.end),
                    "status": int(c.status),
                }
                for c in group
            ],
        }
        for (site_id, _), group in groups.items()
    ]


class WebhookSender:
    """Queues, delivers and retries the cloud's status webhooks in emulated time."""

    def __init__(
        self,
        *,
        clock: Clock,
        subscriptions: Callable[[int], Sequence[Subscription]],
        rng: random.Random,
        http: httpx.AsyncClient | None = None,
        max_attempts: int = 10,
        base_backoff_s: float = 2.0,
        max_backoff_s: float = 600.0,
    ) -> None:
        self._clock = clock
        self._subscriptions = subscriptions
        self._rng = rng
        self._http = http
        self._owns_http = False
        self._max_attempts = max_attempts
        self._base_backoff_s = base_backoff_s
        self._max_backoff_s = max_backoff_s
        self._faults = WebhookFaults()
        self._lock = threading.Lock()
        self._queue: list[_Delivery] = []
        self._seq = itertools.count()
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self.attempts: list[DeliveryAttempt] = []
        self.delivered = 0
        self.dropped = 0
        self.given_up = 0
        install_log_redaction()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def faults(self) -> WebhookFaults:
        return self._faults

    def set_faults(self, faults: WebhookFaults) -> None:
        with self._lock:
            self._faults = faults

    def next_due(self) -> datetime | None:
        """When the earliest queued delivery is due, or None when nothing is queued."""
        with self._lock:
            return min((d.due for d in self._queue), default=None)

    # --- publishing -------------------------------------------------------------------

    def publish(self, partner_id: int, changes: Sequence[StatusChange]) -> None:
        """Queue the changes' webhooks for every enabled subscription of the partner."""
        if not changes:
            return
        subscriptions = [s for s in self._subscriptions(partner_id) if s.enabled]
        payloads = batch_payloads(changes)
        now = self._clock.now()
        with self._lock:
            for payload in payloads:
                body = json.dumps(payload, separators=(",", ":")).encode()
                for subscription in subscriptions:
                    self._enqueue(subscription, int(str(payload["siteId"])), body, now)
        self._signal()

    def _enqueue(
        self, subscription: Subscription, site_id: int, body: bytes, now: datetime
    ) -> None:
        # Called under the lock; every rng draw happens here, in publish order.
        delivery_id = f"msg_{self._rng.getrandbits(96):024x}"
        faults = self._faults
        secrets = url_secrets(subscription.url) + (
            (subscription.signing_secret,) if subscription.signing_secret else ()
        )
        copy = _Delivery(delivery_id, next(self._seq), subscription, site_id, body, now, 0, secrets)
        if faults.drop_rate > 0 and self._rng.random() < faults.drop_rate:
            self.dropped += 1
            self._log_fault(copy, "dropped", now)
            return
        if faults.delay_s > 0 and self._rng.random() < faults.delay_rate:
            copy.due = now + timedelta(seconds=faults.delay_s)
        self._queue.append(copy)
        if faults.duplicate_rate > 0 and self._rng.random() < faults.duplicate_rate:
            twin = _Delivery(delivery_id, next(self._seq), subscription, site_id, body, copy.due)
            twin.secrets = secrets
            self._queue.append(twin)
            self._log_fault(twin, "duplicated", now)

    def _log_fault(self, delivery: _Delivery, fault: str, now: datetime) -> None:
        self._record(delivery, now, attempt=0, fault=fault)

    def _record(
        self,
        delivery: _Delivery,
        now: datetime,
        *,
        attempt: int,
        status_code: int | None = None,
        error: str | None = None,
        fault: str | None = None,
    ) -> DeliveryAttempt:
        url = redact_url(delivery.subscription.url)
        record = DeliveryAttempt(
            delivery.delivery_id, delivery.subscription.subscription_id, delivery.site_id, url,
            attempt, now, status_code, error, fault,
        )  # fmt: skip
        self.attempts.append(record)
        if len(self.attempts) > _MAX_ATTEMPT_LOG:  # a long fast demo must not grow forever
            del self.attempts[: _MAX_ATTEMPT_LOG // 2]
        return record

    def _signal(self) -> None:
        wake = self._wake
        if wake is not None and not wake[0].is_closed():
            wake[0].call_soon_threadsafe(wake[1].set)

    # --- delivering -------------------------------------------------------------------

    def _take_due(self, now: datetime) -> list[_Delivery]:
        with self._lock:
            due = sorted((d for d in self._queue if d.due <= now), key=lambda d: (d.due, d.seq))
            self._queue = [d for d in self._queue if d.due > now]
            if due and self._faults.reorder:
                self._rng.shuffle(due)
        return due

    def _requeue(self, deliveries: Sequence[_Delivery]) -> None:
        with self._lock:
            self._queue.extend(deliveries)

    async def deliver_due(self, stop: asyncio.Event | None = None) -> int:
        """Attempt every delivery due at the clock's now, until `stop` is set (the ones not
        attempted stay queued); returns how many succeeded."""
        now = self._clock.now()
        succeeded = 0
        due = self._take_due(now)
        for n, delivery in enumerate(due):
            if stop is not None and stop.is_set():
                self._requeue(due[n:])
                break
            if await self._attempt(delivery, now):
                succeeded += 1
        return succeeded

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
            self._owns_http = True
        return self._http

    def _request(self, delivery: _Delivery, now: datetime) -> httpx.Request:
        subscription = delivery.subscription
        parts = urlsplit(subscription.url)
        headers = {"content-type": "application/json", **subscription.extra_headers}
        if "@" in parts.netloc:
            netloc = parts.netloc.rsplit("@", 1)[1]
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
            headers["authorization"] = basic_header(parts.username, parts.password)
        else:
            url = subscription.url
        if subscription.signing_secret:
            signer = Webhook(subscription.signing_secret)
            headers["webhook-id"] = delivery.delivery_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = signer.sign(
                delivery.delivery_id, now, delivery.body.decode()
            )
        return self._client().build_request("POST", url, content=delivery.body, headers=headers)

    async def _attempt(self, delivery: _Delivery, now: datetime) -> bool:
        delivery.attempts += 1
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client().send(self._request(delivery, now))
            await response.aclose()
            status = response.status_code
        except Exception as exc:  # refused, timeout, bad URL or secret: all retried, never fatal
            error = scrub(f"{type(exc).__name__}: {exc}", delivery.secrets)
        attempt = self._record(
            delivery, now, attempt=delivery.attempts, status_code=status, error=error
        )
        if attempt.ok:
            self.delivered += 1
            return True
        self._retry_or_give_up(delivery, now, status if status is not None else error)
        return False

    def _retry_or_give_up(self, delivery: _Delivery, now: datetime, why: object) -> None:
        url = redact_url(delivery.subscription.url)
        if delivery.attempts >= self._max_attempts:
            self.given_up += 1
            logger.warning(
                "webhook %s to %s given up after %d attempts (last: %s)",
                delivery.delivery_id,
                url,
                delivery.attempts,
                why,
            )
            return
        backoff = min(self._base_backoff_s * 2 ** (delivery.attempts - 1), self._max_backoff_s)
        delivery.due = now + timedelta(seconds=backoff)
        logger.info(
            "webhook %s to %s failed (%s); retry %d in %.0f s",
            delivery.delivery_id,
            url,
            why,
            delivery.attempts + 1,
            backoff,
        )
        with self._lock:
            self._queue.append(delivery)

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver what is due, then wait for the next due time, new work or stop."""
        wake = asyncio.Event()
        self._wake = (asyncio.get_running_loop(), wake)
        try:
            while not stop.is_set():
                wake.clear()
                await self.deliver_due(stop)
                await self._wait(stop, wake)
        finally:
            self._wake = None
            await self.aclose()

    async def _wait(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        await waiting.until(self._clock, self.next_due(), stop, wake, real_s=_IDLE_WAIT_S)

    async def aclose(self) -> None:
        """Close the HTTP client if this sender created it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
            self._owns_http = False


def basic_header(username: str | None, password: str | None) -> str:
    """The Authorization value for URL userinfo (percent-decoded, as browsers do)."""
    credentials = f"{unquote(username or '')}:{unquote(password or '')}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")
