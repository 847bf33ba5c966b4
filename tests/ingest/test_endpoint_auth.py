"""The served endpoint's authentication: each accepted way, 401/403 counted, secrets never shown."""

from __future__ import annotations

import base64
import logging

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.served_receiver import SECRET, body, entry, receiver_app

pytestmark = pytest.mark.anyio

SIGNING = [base64.b64encode(b"old-signing-key-0123456789abcdef").decode(),
           base64.b64encode(b"new-signing-key-0123456789abcdef").decode()]  # fmt: skip


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"cellect:{password}".encode()).decode()


async def test_each_way_of_presenting_the_secret_is_accepted(sqlite_url: str) -> None:
    """Bearer, HTTP Basic password and ?token= each get a 200 and store the delivery."""
    async with receiver_app(sqlite_url) as app:
        ways = [
            ({"Authorization": f"Bearer {SECRET}"}, None),
            ({"Authorization": _basic(SECRET)}, None),
            ({}, {"token": SECRET}),
        ]
        for slot, (headers, params) in enumerate(ways):
            response = await app.post(body(1, entry(slot, 1)), headers, params)
            assert response.status_code == 200, response.text
        assert app.counts()[0] == 3
        assert app.outcomes("accepted") == 3


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({}, None),
        ({"Authorization": "Bearer wrong-secret"}, None),
        ({"Authorization": f"Bearer {SECRET}x"}, None),
        ({"Authorization": _basic("wrong")}, None),
        ({"Authorization": "Basic !!not-base64!!"}, None),
        ({"Authorization": f"Token {SECRET}"}, None),
        ({}, {"token": "wrong"}),
        ({}, {"secret": SECRET}),
    ],
)
async def test_a_missing_or_wrong_secret_is_401_counted_and_stores_nothing(
    sqlite_url: str, headers: dict[str, str], params: dict[str, str] | None
) -> None:
    """Every wrong or missing credential: 401, counted as unauthorized, no row written."""
    async with receiver_app(sqlite_url) as app:
        response = await app.post(body(), headers, params)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert app.outcomes("unauthorized") == 1
        assert app.counts() == (0, 0, 0)


async def test_the_allow_list_refuses_other_sources_with_403(sqlite_url: str) -> None:
    """A peer outside CELLECT_WEBHOOK_ALLOWED_IPS gets 403 (counted) even with the secret."""
    async with receiver_app(sqlite_url, webhook_allowed_ips=["10.0.0.0/8", "::1"]) as app:
        response = await app.post(body())
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        assert app.outcomes("forbidden") == 1
        assert app.counts() == (0, 0, 0)
    async with receiver_app(sqlite_url, webhook_allowed_ips="10.0.0.0/8 127.0.0.0/8") as app:
        assert (await app.post(body())).status_code == 200


async def test_standard_webhooks_signatures_are_verified_with_rotation(sqlite_url: str) -> None:
    """With signing secrets set, any of them signs; tampering or a stale timestamp is 401."""
    async with receiver_app(sqlite_url, webhook_signing_secrets=" ".join(SIGNING)) as app:
        content = body(1, entry(1, 2))
        now = app.clock.now()

        def signed(key: str, data: bytes, at: float = 0) -> dict[str, str]:
            moment = now.fromtimestamp(now.timestamp() + at, now.tzinfo)
            signature = Webhook(key).sign("msg_1", moment, data.decode())
            return {"Authorization": f"Bearer {SECRET}", "webhook-id": "msg_1",
                    "webhook-timestamp": str(int(moment.timestamp())),
                    "webhook-signature": signature}  # fmt: skip

        assert (await app.post(content, {"Authorization": f"Bearer {SECRET}"})).status_code == 401
        assert (await app.post(content, signed(SIGNING[1], content))).status_code == 200
        assert (
            await app.post(body(1, entry(2, 2)), signed(SIGNING[0], content))
        ).status_code == 401
        assert (await app.post(content, signed(SIGNING[0], content, at=-301))).status_code == 401
        assert (await app.post(content, signed(SIGNING[0], content, at=299))).status_code == 200
        assert app.outcomes("unauthorized") == 3
        assert app.counts()[0] == 1


async def test_the_secret_never_appears_in_logs_or_error_bodies(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed, malformed and accepted deliveries alike leave the secret out of logs and bodies."""
    caplog.set_level(logging.DEBUG)
    async with receiver_app(sqlite_url) as app:
        responses = [
            await app.post(body(), {"Authorization": f"Bearer {SECRET}-nearly"}),
            await app.post(b"{not json", {}, {"token": SECRET}),
            await app.post(b'{"siteId": "x", "schedule": []}', {"Authorization": _basic(SECRET)}),
            await app.post(b"x" * 2_000_000, {}, {"token": SECRET}),
            await app.post(body(), {}, {"token": SECRET}),
        ]
    assert [r.status_code for r in responses] == [401, 400, 422, 413, 200]
    for response in responses:
        assert SECRET not in response.text
        assert SECRET not in str(response.headers)
    # The test's own httpx client logs the URLs it requests; everything else is the server's.
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server, "the server logged nothing at DEBUG: the check would be vacuous"
    for record in server:
        assert SECRET not in record.getMessage()
