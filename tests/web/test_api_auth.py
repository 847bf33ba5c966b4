"""The operator API's door: the admin token on everything under /api/, JSON bodies only,
bodies capped at 64 KiB — on the real app, and over a real loopback socket."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.operator_api import ADMIN_TOKEN, AUTH
from tests.support.served_receiver import receiver_app

SILENCE = {"matchers": {"rule": "SoCLow"}, "duration": "1h", "comment": "door test"}
CAP = 64 * 1024


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
        {"Authorization": f"Token {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": _basic(ADMIN_TOKEN)},
        {"Authorization": "Bearer ünïcode".encode()},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/silences"),
        ("POST", "/api/silences"),
        ("DELETE", "/api/silences/1"),
        ("GET", "/api/nothing-here"),
        ("GET", "/api/"),
    ],
)
def test_without_the_admin_token_every_api_path_is_401(
    api: TestClient, headers: dict[str, Any], method: str, path: str
) -> None:
    """A missing, wrong or differently presented token is 401 with a JSON body and
    `WWW-Authenticate: Bearer`, on every /api/ path and method, known or not."""
    sent = {"Content-Type": "application/json", **headers}
    response = api.request(method, path, json=SILENCE if method == "POST" else None, headers=sent)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"
    assert ADMIN_TOKEN not in response.text
    made = api.get("/api/silences", headers=AUTH).json()["silences"]
    assert [s for s in made if s["comment"] == SILENCE["comment"]] == []


def test_the_token_in_the_query_string_is_not_accepted(api: TestClient) -> None:
    """`?token=` (which access logs and browser history keep) does not open the API."""
    assert api.get("/api/silences", params={"token": ADMIN_TOKEN}).status_code == 401


def test_with_the_admin_token_the_api_answers(api: TestClient) -> None:
    """The configured token as `Authorization: Bearer` (scheme in any case) opens the API."""
    assert api.get("/api/silences", headers=AUTH).status_code == 200
    lower = {"Authorization": f"bearer {ADMIN_TOKEN}"}
    assert api.get("/api/silences", headers=lower).status_code == 200


def test_the_rest_of_the_monitor_needs_no_admin_token(api: TestClient) -> None:
    """/healthz, /readyz and /metrics stay open (the container's health check asks /healthz)."""
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code in (200, 503)
    assert api.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/json-patch+json",
        "",
    ],
)
def test_a_body_that_is_not_json_is_415_and_makes_nothing(
    api: TestClient, content_type: str | None
) -> None:
    """A POST whose Content-Type is not application/json — as a cross-site form or
    text/plain fetch sends without a preflight — is 415 and never reaches the handler."""
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = b'{"matchers": {"rule": "Any"}, "duration": "52w", "comment": "mute all"}'
    response = api.post("/api/silences", content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    made = api.get("/api/silences", headers=AUTH).json()["silences"]
    assert [s for s in made if s["comment"] == "mute all"] == []


def test_json_with_parameters_or_capitals_is_json(api: TestClient) -> None:
    """`Application/JSON; charset=utf-8` is JSON: the silence is made."""
    headers = {**AUTH, "Content-Type": "Application/JSON; charset=utf-8"}
    body = b'{"matchers": {"rule": "A"}, "duration": "1m", "comment": "charset"}'
    assert api.post("/api/silences", content=body, headers=headers).status_code == 201


def test_a_body_over_64_kib_is_413(api: TestClient) -> None:
    """A JSON body over 64 KiB is refused with 413; one just under the cap is judged."""
    headers = {**AUTH, "Content-Type": "application/json"}
    padding = " " * CAP
    big = api.post("/api/silences", content=b"{}" + padding.encode(), headers=headers)
    assert big.status_code == 413, big.text
    assert big.json()["error"] == "body_too_large"
    small = b'{"matchers": {"rule": "A"}, "duration": "1m", "comment": "pad"}'
    fits = small + b" " * (CAP - len(small))
    assert api.post("/api/silences", content=fits, headers=headers).status_code == 201


async def _exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes to the served app and read its answer's head (bounded in real time)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()


def _head(path: str, *lines: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: monitor", f"Authorization: Bearer {ADMIN_TOKEN}"]
    return ("\r\n".join([*head, *lines]) + "\r\n\r\n").encode()


@pytest.mark.anyio
async def test_413_comes_without_reading_past_the_cap(sqlite_url: str) -> None:
    """A declared length over the cap is refused before any body byte is sent, and a
    chunked body is refused once past the cap, while the rest has not been sent."""
    async with receiver_app(sqlite_url, admin_token=ADMIN_TOKEN) as app:
        declared = _head("/api/silences", "Content-Type: application/json",
                         "Content-Length: 100000000")  # fmt: skip
        assert (await _exchange(app.url, declared)).startswith(b"HTTP/1.1 413")
        chunk = b"x" * (CAP + 1)
        chunked = _head("/api/silences", "Content-Type: application/json",
                        "Transfer-Encoding: chunked")  # fmt: skip
        first = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"  # no last chunk: never ends
        assert (await _exchange(app.url, chunked + first)).startswith(b"HTTP/1.1 413")


@pytest.mark.anyio
async def test_loopback_callers_need_the_token_too(sqlite_url: str) -> None:
    """Served on 127.0.0.1, a local caller without the token gets 401: loopback is no credential."""
    async with receiver_app(sqlite_url, admin_token=ADMIN_TOKEN) as app:
        body: dict[str, Any] = SILENCE
        assert (await app.http.post("/api/silences", json=body)).status_code == 401
        assert (await app.http.get("/api/silences")).status_code == 401
        made = await app.http.post("/api/silences", json=body, headers=AUTH)
        assert made.status_code == 201
