"""The HTTP layer around the monitor's routes, as Starlette middleware (outermost first).

- `proxies`: which client address the app sees — the peer's, or, from a proxy named in
  CELLECT_FORWARDED_ALLOW_IPS, the one its X-Forwarded-For names (uvicorn's
  ProxyHeadersMiddleware). Outermost, so every check below judges that address.
- `operator_api`: the door of everything under /api/ (admin token, JSON, 64 KiB).
"""

from __future__ import annotations

from starlette.middleware import Middleware

from receiver.settings import Settings
from receiver.web.operator_api import AdminCredential, OperatorApiGuard
from receiver.web.proxies import trusted_proxies


def middleware(settings: Settings, credential: AdminCredential) -> list[Middleware]:
    """The monitor's middleware stack, outermost first."""
    return [*trusted_proxies(settings), Middleware(OperatorApiGuard, credential=credential)]
