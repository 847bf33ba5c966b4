"""Console access: signed session cookies, CSRF tokens, one-time login codes, same-origin.

The admin token is the only credential. A browser trades it once (`POST /login`) for a
session cookie; the console's pages and its JavaScript's calls under /api/ then ride on
that cookie (receiver.web.operator_api accepts it beside the Bearer header).

- **Session cookie** `cellect_session`: `v1.<session id>.<expiry>.<signature>`, the
  signature an HMAC-SHA256 under a key derived from a secret kept in the database (like
  the webhook secret, `console_session_key`) *and* the admin token: changing
  CELLECT_ADMIN_TOKEN ends every session. It expires 12 hours after sign-in (wall-clock
  time, not the monitor's clock, which a demo runs ×60). HttpOnly, SameSite=Strict, Path=/,
  Secure when the request came over https. Logging out forgets the cookie and revokes its
  session id in this process (until its expiry).
- **CSRF token**: bound to the session (an HMAC of its id under the same key), put in each
  page (`<meta name="csrf-token">` and every form's `csrf_token` field); every POST of a
  form and every unsafe /api/ call made with the cookie must carry it (form field or
  `X-CSRF-Token`). The login form, before any session, uses a double-submit cookie.
- **Same origin**: an unsafe request made with the cookie (and any POST of a form) whose
  `Origin` is another origin, `null`, or whose `Sec-Fetch-Site` says cross-site, is refused.
- **One-time login code**: `cellect-monitor run --emulator` prints a sign-in URL with a code
  that is valid once, for 10 minutes, in this process only; it is never the admin token.
  Only its SHA-256 is kept.

No secret here reaches a log line, a metric or an error message; the reprs show none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import Scope

SESSION_COOKIE = "cellect_session"
LOGIN_CSRF_COOKIE = "cellect_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_KEY_NAME = "console_session_key"
SESSION_LIFETIME_S = 12 * 3600
LOGIN_CODE_LIFETIME_S = 600
LOGIN_CODES_KEPT = 16  # codes waiting to be used at most; the oldest goes first
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def session_key(kept: str, admin_token: str) -> bytes:
    """The signing key: the kept secret bound to the admin token (a new token, new key)."""
    label = b"cellect-console-session\0" + admin_token.encode("utf-8")
    return hmac.new(kept.encode("utf-8"), label, hashlib.sha256).digest()


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in browser: its session id, expiry (epoch seconds) and CSRF token."""

    id: str = field(repr=False)
    expires_at: float
    csrf: str = field(repr=False)

    def csrf_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(
            offered.encode("utf-8"), self.csrf.encode("ascii")
        )


class SessionSigner:
    """Issues and opens session cookies under one key; remembers logged-out sessions."""

    def __init__(self, key: bytes, lifetime_s: float = SESSION_LIFETIME_S) -> None:
        self._key = key
        self.lifetime_s = lifetime_s
        self._revoked: dict[str, float] = {}  # session id → its expiry

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode("ascii"), hashlib.sha256).digest())

    def _session(self, session_id: str, expires_at: int) -> ConsoleSession:
        return ConsoleSession(session_id, float(expires_at), self._sign(f"csrf.{session_id}"))

    def issue(self, now: float) -> tuple[str, ConsoleSession]:
        """A new session and its cookie value."""
        session_id, expires_at = secrets.token_urlsafe(18), int(now + self.lifetime_s)
        payload = f"{_VERSION}.{session_id}.{expires_at}"
        return f"{payload}.{self._sign(payload)}", self._session(session_id, expires_at)

    def open(self, cookie: str | None, now: float) -> ConsoleSession | None:
        """The session a cookie value carries, if its signature holds and it is current."""
        if not cookie or len(cookie) > 200:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
            return None
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(
            parts[3].encode("ascii", "replace"), self._sign(payload).encode()
        ):
            return None
        expires_at = int(parts[2])
        if expires_at <= now or parts[1] in self._revoked:
            return None
        return self._session(parts[1], expires_at)

    def revoke(self, session: ConsoleSession, now: float) -> None:
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}
        self._revoked[session.id] = session.expires_at

    def __repr__(self) -> str:
        return f"SessionSigner(lifetime_s={self.lifetime_s:g})"


class LoginCodes:
    """One-time sign-in codes: each valid once, for a short time, in this process."""

    def __init__(self, lifetime_s: float = LOGIN_CODE_LIFETIME_S) -> None:
        self.lifetime_s = lifetime_s
        self._codes: OrderedDict[bytes, float] = OrderedDict()  # SHA-256 → expiry

    def issue(self, now: float) -> str:
        code = secrets.token_urlsafe(24)
        self._codes[hashlib.sha256(code.encode()).digest()] = now + self.lifetime_s
        while len(self._codes) > LOGIN_CODES_KEPT:
            self._codes.popitem(last=False)
        return code

    def redeem(self, code: str, now: float) -> bool:
        """Whether `code` is a current code; it is spent either way."""
        expires_at = self._codes.pop(hashlib.sha256(code.encode("utf-8")).digest(), None)
        return expires_at is not None and now < expires_at

    def __repr__(self) -> str:
        return f"LoginCodes(waiting={len(self._codes)})"


def cookie_value(headers: Headers, name: str) -> str | None:
    """The value of cookie `name` in the request's Cookie header(s), if any."""
    for raw in headers.getlist("cookie"):
        value = cookie_parser(raw).get(name)  # Starlette's lenient parser, as browsers send
        if value is not None:
            return value
    return None


def own_origin(scope: Scope, headers: Headers) -> str:
    """`scheme://host[:port]` the browser addressed (scheme from a trusted proxy, if any)."""
    return f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()


def same_origin(scope: Scope, headers: Headers) -> bool:
    """False for a request a browser says came from another site: a foreign or `null`
    Origin, or Sec-Fetch-Site cross-site/same-site. Neither header: not a browser's
    cross-site request (they send Origin on every POST), so the CSRF token decides."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in {"same-origin", "none"}:
        return False
    origin = headers.get("origin")
    return origin is None or origin.lower() == own_origin(scope, headers)


def is_https(scope: Scope) -> bool:
    return scope.get("scheme") == "https"
