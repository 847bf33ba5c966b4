"""The ingest endpoint `POST /webhooks/time-series`, as a plain ASGI app.

Order of checks, cheapest and safest first: source allow-list (403), shared secret
(401) before a byte of the body is read, body cap (413 — from Content-Length when given,
else while streaming, so an oversized body is never read whole), Standard Webhooks
signature (401), JSON and schema (400/422 naming the field). Only then is the delivery
handed to the group committer, and the answer (200) goes out after its transaction
committed. A duplicate delivery is acknowledged too (200, `"duplicate": true`).

The receiver speaks ASGI directly (Starlette routes to it like to any ASGI endpoint,
through its middleware and method check): it reads the few headers it needs from the
scope and the body from `receive`, and sends a JSON body it renders itself: every
delivery passes here, so it builds no Request or Response objects it does not need.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from receiver.cellect.clock import Clock
from receiver.cellect.webhook import PayloadError, parse_status_webhook
from receiver.ingest.auth import WebhookAuth, WebhookAuthError
from receiver.ingest.commit import CommitterClosed, CommitTimeout, GroupCommitter, QueueFull
from receiver.ingest.framing import DeliveryRefused
from receiver.storage.deliveries import BatchOutcome, IncomingDelivery

log = logging.getLogger(__name__)

JSON_HEADERS = (b"content-type", b"application/json")
RETRY_AFTER = (b"retry-after", b"5")
Answer = tuple[str, int, bytes]  # outcome (metrics label), HTTP status, JSON body


class BodyTooLarge(Exception):
    """The request body exceeds the configured cap."""


class Disconnected(Exception):
    """The client went away before the whole body arrived."""


def render_json(content: Mapping[str, Any]) -> bytes:
    """JSON as Starlette's JSONResponse renders it (compact, UTF-8)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def error_answer(outcome: str, status: int, error: str, message: str, **extra: Any) -> Answer:
    """A refusal: its metrics outcome, status and `{"error", "message", …}` body."""
    return outcome, status, render_json({"error": error, "message": message, **extra})


def header_map(scope: Scope) -> dict[str, str]:
    """The request headers by lower-case name; the first of repeated ones wins."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


def query_map(scope: Scope) -> Mapping[str, str]:
    """The query parameters (the last of repeated ones wins); an empty query is not parsed."""
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}


async def read_capped(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Send, status: int, body: bytes) -> None:
    headers = [JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if status == 503:  # every 503 here is temporary: busy, stalled, shutting down
        headers.append(RETRY_AFTER)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class WebhookReceiver:
    """The endpoint: checks, then a durable, idempotent hand-off to the committer."""

    auth: WebhookAuth
    committer: GroupCommitter[IncomingDelivery, BatchOutcome]
    clock: Clock
    max_body_bytes: int
    on_request: Callable[[str, float], None] = lambda outcome, seconds: None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        outcome, status, body = await self._handle(scope, receive)
        await send_json(send, status, body)
        self.on_request(outcome, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive) -> Answer:
        client = scope.get("client")
        host = client[0] if client else None
        headers = header_map(scope)
        try:
            self.auth.check_source(host)
            self.auth.check_credentials(headers, query_map(scope))
            body = await read_capped(receive, headers.get("content-length"), self.max_body_bytes)
            if self.auth.signing_secrets:  # the clock is read only when it matters
                self.auth.check_signature(headers, body, self.clock.now())
        except WebhookAuthError as exc:
            return error_answer(exc.outcome, exc.status, exc.outcome, exc.message)
        except BodyTooLarge:
            return error_answer(
                "too_large", 413, "too_large", f"body exceeds {self.max_body_bytes} bytes"
            )
        except Disconnected:
            return error_answer("invalid", 400, "disconnected", "the client went away mid-body")
        return await self._ingest(host, body)

    async def _ingest(self, host: str | None, body: bytes) -> Answer:
        try:
            text = body.decode("utf-8")
            payload = parse_status_webhook(json.loads(text))
        except (ValueError, RecursionError):
            return error_answer("invalid", 400, "invalid_json", "body is not JSON", field="body")
        except PayloadError as exc:
            errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            first = exc.errors[0]
            return error_answer(
                "invalid", 422, "invalid_payload", first.message, field=first.field, errors=errors
            )
        delivery = IncomingDelivery(
            body=text, webhook=payload, received_at=self.clock.now(), remote_addr=host
        )
        try:
            stored = await self.committer.submit(delivery)
        except CommitterClosed:
            return error_answer("error", 503, "unavailable", "shutting down; retry")
        except QueueFull:
            return error_answer("error", 503, "busy", "too many deliveries waiting; retry")
        except CommitTimeout:
            log.warning("a webhook delivery was not committed in time")
            return error_answer("error", 503, "timeout", "not stored in time; retry")
        except DeliveryRefused as exc:
            log.error("the database refused a webhook delivery: %s", exc)
            return error_answer(
                "invalid", 422, "refused", "the database refused this delivery", field="body"
            )
        except Exception:
            log.exception("storing a webhook delivery failed")
            return error_answer(
                "error", 503, "storage_failed", "could not store the delivery; retry"
            )
        outcome = "duplicate" if stored.duplicate else "accepted"
        return outcome, 200, acknowledgement(outcome, stored)


def acknowledgement(outcome: str, stored: BatchOutcome) -> bytes:
    """The 200 body, as `render_json` would render it, without going through json.dumps."""
    delivery_id = "null" if stored.delivery_id is None else str(int(stored.delivery_id))
    duplicate = "true" if stored.duplicate else "false"
    body = f'{{"status":"{outcome}","duplicate":{duplicate},"deliveryId":{delivery_id}}}'
    return body.encode()
