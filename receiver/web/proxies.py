"""Honest client addresses: forwarded headers count only from proxies the operator names.

uvicorn believes X-Forwarded-For from 127.0.0.1 by default (and from whatever its own
FORWARDED_ALLOW_IPS says), so any local process — or a proxy that passes a client's own
header along — could pick the address the webhook allow-list judges. The monitor turns
uvicorn's handling off (receiver.runtime.serving) and applies the same ProxyHeadersMiddleware
itself, with CELLECT_FORWARDED_ALLOW_IPS only: with none named, the peer's address is the
client's. Named, a request from such a proxy gets the address its X-Forwarded-For names
(the rightmost one that is not itself a trusted proxy) and its X-Forwarded-Proto scheme.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from receiver.settings import Settings


def trusted_proxies(settings: Settings) -> list[Middleware]:
    """The middleware that believes the named proxies, or none when none is named."""
    if not settings.forwarded_allow_ips:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.forwarded_allow_ips))]
