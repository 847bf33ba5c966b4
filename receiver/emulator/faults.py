"""Fault injection for the emulated Partner API: latency, 5xx errors, 429s and drops.

Faults are configured per endpoint (or `"*"` for every endpoint without its own rule)
through `POST /_emulator/faults` and drawn from a seeded rng, so a run is repeatable.
`FaultMiddleware` wraps the public API (never `/_emulator`) as plain ASGI:

- `latency_s`: the answer is delayed by that many real seconds;
- `rate_limit_rate`: 429 Too Many Requests with `Retry-After: retry_after_s`;
- `error_rate`: the endpoint's own 5xx code (30078 access token, 30006 store, 30090
  delete, 30001 get time series, 30003 master data and events — the guide has no
  events code, and events are site data);
- `drop_rate`: the request *is processed*, then the connection is cut after the status
  line: the client cannot tell whether a post was stored (the hard case for
  idempotency). Under uvicorn the peer sees a closed connection; through
  httpx.ASGITransport the client sees `DroppedConnection`, an `httpx.RemoteProtocolError`.
- `expire_tokens`: one-shot, applied when configured (every access token issued so
  far stops working); it is not a standing rule.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.cellect.errors import UnknownCellectError, error_for

ENDPOINT_CODES: dict[str, int] = {
    "access-token": 30078,
    "store-time-series": 30006,
    "delete-time-series": 30090,
    "get-time-series": 30001,
    "master-data": 30003,
    "events": 30003,
}
ANY = "*"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^(/v1)?/access-token/?$"), "access-token"),
    ("POST", re.compile(r"^(/v1)?/resources/sites/[^/]*/?time-series/?$"), "store-time-series"),
    ("DELETE", re.compile(r"^(/v1)?/resources/sites/[^/]*/?time-series/?$"), "delete-time-series"),
    ("GET", re.compile(r"^(/v1)?/resources/sites/[^/]*/?time-series/?$"), "get-time-series"),
    ("GET", re.compile(r"^(/v1)?/resources/sites/([^/]*/)?master-data/?$"), "master-data"),
    ("GET", re.compile(r"^(/v1)?/resources/sites/[^/]*/?events/?$"), "events"),
)


class DroppedConnection(httpx.RemoteProtocolError):
    """The emulator cut the connection on purpose (the `drop_rate` fault)."""


@dataclass(frozen=True)
class FaultRule:
    """What goes wrong at one endpoint; rates are probabilities per request."""

    error_rate: float = 0.0
    latency_s: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: int = 1
    drop_rate: float = 0.0

    def public(self) -> dict[str, Any]:
        return asdict(self)


def endpoint_of(method: str, path: str) -> str | None:
    """The fault endpoint name of a public API request, None for anything else."""
    for route_method, pattern, name in _ROUTES:
        if method == route_method and pattern.match(path):
            return name
    return None


class Faults:
    """The configured rules and the seeded rng that decides each request's fate."""

    def __init__(self, *, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self.rules: dict[str, FaultRule] = {}

    def set(self, endpoint: str, rule: FaultRule) -> None:
        self.rules[endpoint] = rule

    def clear(self) -> None:
        self.rules.clear()

    def rule_for(self, endpoint: str) -> FaultRule | None:
        return self.rules.get(endpoint, self.rules.get(ANY))

    def draw(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[Any]) -> None:
    raw = json.dumps(body).encode()
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + headers})
    await send({"type": "http.response.body", "body": raw})


class FaultMiddleware:
    """Plain ASGI middleware applying `Faults` to the public API's requests."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_of(scope.get("method", ""), scope.get("path", ""))
        rule = self.faults.rule_for(endpoint) if endpoint and scope["type"] == "http" else None
        if rule is None or endpoint is None:
            await self.app(scope, receive, send)
            return
        if rule.latency_s > 0:
            await asyncio.sleep(rule.latency_s)
        if self.faults.draw(rule.rate_limit_rate):
            body = UnknownCellectError("Too Many Requests", http_status=429).body()
            retry = [(b"retry-after", str(rule.retry_after_s).encode())]
            await _send_json(send, 429, body, retry)
        elif self.faults.draw(rule.error_rate):
            error = error_for(ENDPOINT_CODES[endpoint], "injected fault")
            await _send_json(send, error.http_status, error.body(), [])
        elif self.faults.draw(rule.drop_rate):
            await self._process_then_drop(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _process_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        # A status line promising a body that never comes: the server must close the
        # connection, and the client cannot know what happened to its request.
        headers = [(b"content-length", b"64"), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise DroppedConnection("connection dropped by the emulator (fault injection)")
