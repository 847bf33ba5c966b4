"""The operator API's door: everything under /api/ needs the admin token, JSON, ≤ 64 KiB.

Checks, in order, before a handler runs:
- `Authorization: Bearer <admin token>` (401 with `WWW-Authenticate: Bearer` otherwise),
  for every caller — loopback included: a browser on the operator's machine is a local
  caller too, and any web page it opens can make it send requests. Only the header
  counts: a token in the query string would end up in access logs and browser history.
  The comparison is constant-time.
- Or the console's session cookie (receiver.web.access), which the admin token bought at
  `POST /login`: enough for GET/HEAD/OPTIONS; any other method made with the cookie must
  also carry the session's CSRF token in `X-CSRF-Token` and come from the same origin
  (403 otherwise). The Bearer path is unchanged and needs neither.
- A request that carries a body (and every POST, PUT, PATCH) must say
  `Content-Type: application/json` (415): the bodies a page can send cross-site without
  a CORS preflight (forms, text/plain) never reach a handler.
- The body is read up to 64 KiB (413 as soon as it is known to be larger, from
  Content-Length or while reading, never read further) and handed on whole.

The token is CELLECT_ADMIN_TOKEN, else one generated on the first start and kept in the
database like the webhook secret (`cellect-monitor admin token` prints it). It appears in
no log line, metric or error message, and not in this module's reprs.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.cellect.clock import Clock
from receiver.ingest.endpoint import BodyTooLarge, Disconnected, read_capped
from receiver.settings import Settings
from receiver.storage.secrets import kept_secret
from receiver.web.access import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    SESSION_KEY_NAME,
    ConsoleSession,
    LoginCodes,
    SessionSigner,
    cookie_value,
    same_origin,
    session_key,
)

API_PREFIX = "/api"
MAX_BODY_BYTES = 64 * 1024
ADMIN_TOKEN_NAME = "admin_token"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CROSS_SITE = (
    "a change made with the console's session cookie needs its CSRF token in"
    f" {CSRF_HEADER} and a request from the console's own origin"
)
_UNAUTHORIZED = (
    "this API needs Authorization: Bearer <admin token>; `cellect-monitor admin token` prints it"
)


def load_admin_token(settings: Settings, engine: Any, clock: Clock) -> str:
    """CELLECT_ADMIN_TOKEN, else the one generated on the first start and kept in the DB."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    return kept_secret(engine, clock, ADMIN_TOKEN_NAME)


class AdminCredential:
    """The admin token and the console sessions it buys, loaded when the monitor starts;
    until then nothing is accepted. `login_codes` (the demo's one-time sign-in codes)
    exists from the start: a code is only redeemed once the credential is loaded."""

    def __init__(self) -> None:
        self._token: bytes | None = None
        self.sessions: SessionSigner | None = None
        self.login_codes = LoginCodes()

    def load(self, settings: Settings, engine: Any, clock: Clock) -> None:
        token = load_admin_token(settings, engine, clock)
        kept = kept_secret(engine, clock, SESSION_KEY_NAME)
        self.sessions = SessionSigner(session_key(kept, token))
        self._token = token.encode("ascii")

    @property
    def loaded(self) -> bool:
        return self._token is not None

    def accepts(self, authorization: str | None) -> bool:
        """Whether the Authorization header is `Bearer <the token>` (scheme in any case)."""
        if self._token is None or authorization is None:
            return False
        scheme, _, value = authorization.partition(" ")
        offered = value.strip().encode("latin-1")  # headers arrive as latin-1 text
        return scheme.lower() == "bearer" and hmac.compare_digest(offered, self._token)

    def accepts_token(self, offered: str) -> bool:
        """Whether `offered` (the login form's field) is the admin token."""
        if self._token is None:
            return False
        return hmac.compare_digest(offered.strip().encode("utf-8"), self._token)

    def session(self, headers: Headers, now: float | None = None) -> ConsoleSession | None:
        """The current console session the request's cookie carries, if any."""
        if self.sessions is None:
            return None
        cookie = cookie_value(headers, SESSION_COOKIE)
        return self.sessions.open(cookie, time.time() if now is None else now)

    def __repr__(self) -> str:
        return f"AdminCredential(loaded={self.loaded})"


def under_api(scope: Scope) -> bool:
    """Whether the request's path (below any root path) is /api or below it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def refusal(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status, headers=headers)


def _carries_body(method: str, headers: Headers) -> bool:
    declared = headers.get("content-length")
    return (
        method in _BODY_METHODS
        or (declared is not None and declared != "0")
        or "transfer-encoding" in headers
    )


def _is_json(headers: Headers) -> bool:
    media_type = headers.get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == "application/json"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the body already read, then defers to the real one."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class OperatorApiGuard:
    """ASGI middleware: the checks above on /api/, everything else passed through."""

    def __init__(self, app: ASGIApp, credential: AdminCredential) -> None:
        self.app, self.credential = app, credential

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not under_api(scope):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refused = self._check_headers(scope, scope["method"], headers)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if not _carries_body(scope["method"], headers):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_capped(receive, headers.get("content-length"), MAX_BODY_BYTES)
        except BodyTooLarge:
            too_large = f"the body is over {MAX_BODY_BYTES} bytes"
            await refusal(413, "body_too_large", too_large)(scope, receive, send)
            return
        except Disconnected:
            return
        await self.app(scope, _replay(body, receive), send)

    def _check_headers(self, scope: Scope, method: str, headers: Headers) -> JSONResponse | None:
        if not self.credential.loaded:
            return refusal(503, "starting", "not ready yet", {"Retry-After": "5"})
        if not self.credential.accepts(headers.get("authorization")):
            session = self.credential.session(headers)
            if session is None:
                return refusal(401, "unauthorized", _UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
            if method not in SAFE_METHODS and not (
                same_origin(scope, headers) and session.csrf_matches(headers.get(CSRF_HEADER))
            ):
                return refusal(403, "csrf", _CROSS_SITE)
        if _carries_body(method, headers) and not _is_json(headers):
            message = "send the body as JSON with Content-Type: application/json"
            return refusal(415, "unsupported_media_type", message)
        return None
