"""The served endpoint's input handling: body cap without buffering, 4xx naming the field."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, select

from receiver.storage.tables import WebhookDelivery
from receiver.web.app import WEBHOOK_PATH
from tests.support.served_receiver import SECRET, Served, entry, payload, receiver_app

pytestmark = pytest.mark.anyio
CAP = 64 * 1024


async def _raw_exchange(app: Served, head: str, chunks: int, chunk: bytes) -> tuple[bytes, int]:
    """Send `head`, then up to `chunks` chunks until the answer arrives; (answer, bytes sent)."""
    parts = urlsplit(app.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    answer = asyncio.create_task(reader.read(4096))
    sent = 0
    try:
        writer.write(head.encode())
        for _ in range(chunks):
            if answer.done():
                break
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()
        return await asyncio.wait_for(answer, timeout=10), sent
    except ConnectionError:
        return await asyncio.wait_for(answer, timeout=10), sent
    finally:
        writer.close()


def _head(extra: str) -> str:
    return (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: monitor\r\nAuthorization: Bearer {SECRET}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    )


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(sqlite_url: str) -> None:
    """Content-Length over the cap: 413 at once, while the client has sent no body at all."""
    async with receiver_app(sqlite_url, webhook_max_body_bytes=CAP) as app:
        answer, sent = await _raw_exchange(app, _head("Content-Length: 104857600\r\n"), 0, b"")
        assert answer.startswith(b"HTTP/1.1 413")
        assert sent == 0
        assert app.outcomes("too_large") == 1
        assert app.counts() == (0, 0, 0)


async def test_a_chunked_oversized_body_is_cut_off_while_streaming(sqlite_url: str) -> None:
    """Without Content-Length, 413 arrives long before the (256 MiB) body is exhausted."""
    async with receiver_app(sqlite_url, webhook_max_body_bytes=CAP) as app:
        data = b"[" + b"1," * 32_767 + b"1]"
        chunk = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        head = _head("Transfer-Encoding: chunked\r\n")
        answer, sent = await _raw_exchange(app, head, 4096, chunk)
        assert answer.startswith(b"HTTP/1.1 413")
        assert sent < 32 * 1024 * 1024, f"{sent} bytes went out before the 413"
        assert app.outcomes("too_large") == 1
        assert app.counts() == (0, 0, 0)


async def test_a_body_at_the_cap_is_read_and_judged(sqlite_url: str) -> None:
    """A body just under the cap is not refused for its size (here: 200, with padding)."""
    async with receiver_app(sqlite_url, webhook_max_body_bytes=CAP) as app:
        content = json.dumps(payload(1, entry(1, 1))).encode()
        padded = content[:-1] + b" " * (CAP - len(content)) + b"}"
        assert len(padded) == CAP
        assert (await app.post(padded)).status_code == 200


def _with(changes: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    body = payload(1, entry(1, 1))
    body["schedule"][0].update(changes.pop("entry", {}))
    body.update(changes)
    if drop is not None:
        body.pop(drop)
    return body


BAD = [
    (b"{not json", 400, "body"),
    (b"\xff\xfe", 400, "body"),
    (b"[1, 2]", 422, "body"),
    (b'"text"', 422, "body"),
    (_with({"siteId": "7"}), 422, "siteId"),
    (_with({"siteId": True}), 422, "siteId"),
    (_with({"siteId": 0}), 422, "siteId"),
    (_with({"siteId": 1.5}), 422, "siteId"),
    (_with({}, drop="siteId"), 422, "siteId"),
    (_with({"schedule": []}), 422, "schedule"),
    (_with({"schedule": {"start": "x"}}), 422, "schedule"),
    (_with({}, drop="schedule"), 422, "schedule"),
    (_with({"schedule": [1]}), 422, "schedule[0]"),
    (_with({"entry": {"status": 6}}), 422, "schedule[0].status"),
    (_with({"entry": {"status": 0}}), 422, "schedule[0].status"),
    (_with({"entry": {"status": "2"}}), 422, "schedule[0].status"),
    (_with({"entry": {"status": 2.0}}), 422, "schedule[0].status"),
    (_with({"entry": {"start": "2026-03-02T09:00:00"}}), 422, "schedule[0].start"),
    (_with({"entry": {"end": "2026-03-02 09:00"}}), 422, "schedule[0].end"),
    (_with({"entry": {"start": "yesterday"}}), 422, "schedule[0].start"),
    (_with({"entry": {"start": "0001-01-01T00:00:00+14:00"}}), 422, "schedule[0].start"),
    (_with({"entry": {"end": "9999-12-31T23:59:59-12:00"}}), 422, "schedule[0].end"),
    (_with({"entry": {"start": 1772438400}}), 422, "schedule[0].start"),
    (_with({"entry": {"end": "2026-03-02T08:15:00Z"}}), 422, "schedule[0].start"),
    (_with({"entry": {"end": "2026-03-02T08:00:00Z"}}), 422, "schedule[0].start"),
]


async def test_bad_input_is_a_4xx_naming_the_field_and_stores_nothing(sqlite_url: str) -> None:
    """Wrong types, unknown statuses, naive/unparsable timestamps, start >= end, empty schedule."""
    async with receiver_app(sqlite_url) as app:
        for content, status, field in BAD:
            raw = content if isinstance(content, bytes) else json.dumps(content).encode()
            response = await app.post(raw)
            assert (response.status_code, response.json()["field"]) == (status, field), raw
            assert response.json()["message"]
        assert app.outcomes("invalid") == len(BAD)
        assert app.counts() == (0, 0, 0)


async def test_one_bad_entry_rejects_the_whole_delivery(sqlite_url: str) -> None:
    """A delivery with valid entries and one bad one stores none of them (nothing partial)."""
    async with receiver_app(sqlite_url) as app:
        bad = dict(entry(2, 9))
        response = await app.post(json.dumps(payload(1, entry(1, 2), bad)).encode())
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["schedule[1].status"]
        assert app.counts() == (0, 0, 0)


async def test_unknown_fields_are_ignored_and_kept_in_the_raw_delivery(sqlite_url: str) -> None:
    """The documented policy: extra fields do not refuse a delivery; the raw body keeps them."""
    async with receiver_app(sqlite_url) as app:
        extra = payload(1, {**entry(1, 2), "note": "new"})
        extra["partnerId"] = 9
        response = await app.post(json.dumps(extra).encode())
        assert response.status_code == 200
        assert app.counts() == (1, 1, 1)
        with Session(app.monitor.database) as session:
            stored = session.exec(select(WebhookDelivery.body)).one()
        assert json.loads(stored) == extra
