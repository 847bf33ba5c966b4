"""Which client address the webhook allow-list judges: the peer's, unless the peer is a proxy
named in CELLECT_FORWARDED_ALLOW_IPS — then the address its X-Forwarded-For names, read as
uvicorn's ProxyHeadersMiddleware reads it (the nearest address not itself a trusted proxy)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.served_receiver import body, receiver_app, receiver_settings

pytestmark = pytest.mark.anyio
CLIENT = "203.0.113.7"  # TEST-NET-3, the address a proxy saw


async def _status(database_url: str, forwarded_for: str | None, **settings: Any) -> int:
    headers = {"Authorization": "Bearer endpoint-test-secret-0001"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    async with receiver_app(database_url, webhook_allowed_ips=[CLIENT], **settings) as app:
        return (await app.post(body(), headers)).status_code


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(sqlite_url: str) -> None:
    """Without CELLECT_FORWARDED_ALLOW_IPS a loopback peer's X-Forwarded-For naming an
    allowed address changes nothing: the peer (127.0.0.1) is judged and refused."""
    assert await _status(sqlite_url, CLIENT) == 403


@pytest.mark.parametrize("trusted", [["127.0.0.1"], ["127.0.0.0/8", "::1"], "10.0.0.0/8,127.0.0.1"])
async def test_forwarded_for_from_a_trusted_proxy_is_judged(sqlite_url: str, trusted: Any) -> None:
    """With the peer named as a trusted proxy, the address it forwards is the one judged:
    allowed when it is on the list, refused when it is not (the proxy's own included)."""
    assert await _status(sqlite_url, CLIENT, forwarded_allow_ips=trusted) == 200
    assert await _status(sqlite_url, "198.51.100.9", forwarded_allow_ips=trusted) == 403
    assert await _status(sqlite_url, None, forwarded_allow_ips=trusted) == 403


@pytest.mark.parametrize(
    ("forwarded_for", "status"),
    [
        (f"198.51.100.9, {CLIENT}", 200),  # the proxy appended what it saw: that is judged
        (f"{CLIENT}, 198.51.100.9", 403),  # a client cannot prepend its way onto the list
        (f"{CLIENT}, 127.0.0.1", 200),  # a chain of trusted proxies is walked back
    ],
)
async def test_the_nearest_untrusted_forwarded_address_is_judged(
    sqlite_url: str, forwarded_for: str, status: int
) -> None:
    """In a list of forwarded addresses the rightmost one not a trusted proxy is the client."""
    trusted = {"forwarded_allow_ips": ["127.0.0.1"]}
    assert await _status(sqlite_url, forwarded_for, **trusted) == status


@pytest.mark.parametrize("value", ["*", "proxy.example.com", "10.0.0.300", "10.0.0.0/33"])
def test_forwarded_allow_ips_takes_only_addresses_and_networks(sqlite_url: str, value: str) -> None:
    """A wildcard, a host name or a malformed address is refused at start, naming the setting."""
    with pytest.raises(ValidationError) as refused:
        receiver_settings(sqlite_url, forwarded_allow_ips=value)
    assert refused.value.errors()[0]["loc"] == ("forwarded_allow_ips",)
