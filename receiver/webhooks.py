"""The ingest endpoint `POST /webhooks/time-series`.

Order of checks, cheapest and safest first: source allow-list (403), shared secret
(401) before a byte of the body is read, body cap (413 — from Content-Length when given,
else while streaming, so an oversized body is never read whole), Standard Webhooks
signature (401), JSON and schema (400/422 naming the field). Only then is the delivery
handed to the group committer, and the answer (200) goes out after its transaction
committed. A duplicate delivery is acknowledged too (200, `"duplicate": true`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from receiver.cellect.clock import Clock
from receiver.ingest import CommitterClosed, GroupCommitter
from receiver.storage.webhooks import BatchOutcome, IncomingDelivery
from receiver.webhook_auth import WebhookAuth, WebhookAuthError
from receiver.webhook_payload import PayloadError, parse_status_webhook

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """The request body exceeds the configured cap."""


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class WebhookReceiver:
    """The endpoint: checks, then a durable, idempotent hand-off to the committer."""

    auth: WebhookAuth
    committer: GroupCommitter[IncomingDelivery, BatchOutcome]
    clock: Clock
    max_body_bytes: int
    on_request: Callable[[str, float], None] = lambda outcome, seconds: None
    on_stored: Callable[[BatchOutcome], None] = lambda outcome: None

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        outcome, response = await self._handle(request)
        self.on_request(outcome, time.perf_counter() - started)
        return response

    async def _handle(self, request: Request) -> tuple[str, Response]:
        host = request.client.host if request.client else None
        try:
            self.auth.check_source(host)
            self.auth.check_credentials(request.headers, _query(request))
            body = await read_capped(request, self.max_body_bytes)
            if self.auth.signing_secrets:  # the clock is read only when it matters
                self.auth.check_signature(request.headers, body, self.clock.now())
        except WebhookAuthError as exc:
            return exc.outcome, _error(exc.status, exc.outcome, exc.message)
        except BodyTooLarge:
            limit = self.max_body_bytes
            return "too_large", _error(413, "too_large", f"body exceeds {limit} bytes")
        except ClientDisconnect:
            return "invalid", _error(400, "disconnected", "the client went away mid-body")
        return await self._ingest(host, body)

    async def _ingest(self, host: str | None, body: bytes) -> tuple[str, Response]:
        try:
            text = body.decode("utf-8")
            payload = parse_status_webhook(json.loads(text))
        except (ValueError, RecursionError):
            return "invalid", _error(400, "invalid_json", "body is not JSON", field="body")
        except PayloadError as exc:
            errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            first = exc.errors[0]
            return "invalid", _error(
                422, "invalid_payload", first.message, field=first.field, errors=errors
            )
        delivery = IncomingDelivery(
            body=text,
            webhook=payload,
            received_at=self.clock.now(),
            remote_addr=host,
        )
        try:
            stored = await self.committer.submit(delivery)
        except CommitterClosed:
            return "error", _error(503, "unavailable", "shutting down; retry")
        except Exception:
            log.exception("storing a webhook delivery failed")
            return "error", _error(503, "storage_failed", "could not store the delivery; retry")
        self.on_stored(stored)
        outcome = "duplicate" if stored.duplicate else "accepted"
        return outcome, _acknowledgement(outcome, stored)


def _query(request: Request) -> Mapping[str, str]:
    """The query parameters; an empty query string is not parsed (nothing to find there)."""
    return request.query_params if request.scope.get("query_string") else {}


def _acknowledgement(outcome: str, stored: BatchOutcome) -> Response:
    """The 200 body, as JSONResponse would render it, without going through json.dumps."""
    delivery_id = "null" if stored.delivery_id is None else str(int(stored.delivery_id))
    duplicate = "true" if stored.duplicate else "false"
    body = f'{{"status":"{outcome}","duplicate":{duplicate},"deliveryId":{delivery_id}}}'
    return Response(body.encode(), media_type="application/json")
