"""Signing in and out of the console, and the guard every console page goes through.

- `GET /login`: the form (one field, the admin token), with a double-submit CSRF cookie
  (`cellect_login_csrf`, Path=/login) mirrored in the form. `?next=/path` is where to go
  afterwards (a path of this site only: anything else is `/`).
- `GET /login?code=…`: the demo's one-time sign-in link (receiver.web.access): a current
  code signs the browser in and redirects to `/` (303), so the URL left in the address bar
  and the history holds a spent code; a spent, expired or unknown one shows the form (401).
- `POST /login`: the admin token right → the session cookie and 303 to `next`; wrong →
  the form again, 401; empty → 400; from another origin or without the CSRF cookie's
  value → 403.
- `POST /logout`: with the session's CSRF token → the session revoked, the cookie deleted,
  303 to /login; from another origin 403 (even when the browser sent no cookie with it).

`guarded(credential, handler)` wraps a page handler: without a current session a page
request is redirected (303) to /login?next=<its path>, and a live-refresh fragment request
(`?fragment=…`) answers 401, so that console.js reloads the page into the login form.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from receiver.web.access import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    cookie_value,
    is_https,
    same_origin,
)
from receiver.web.console.forms import CROSS_SITE, FormRefused, posted_form
from receiver.web.console.render import Renderer
from receiver.web.operator_api import AdminCredential

LOGIN_CSRF_MAX_AGE_S = 3600
Handler = Callable[[Request, ConsoleSession], Awaitable[Response]]


def safe_next(value: str | None) -> str:
    """`value` if it is a path of this site (not `//host`, no backslash or control
    character), else `/`: `next` must not make the login form an open redirect."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or len(value) > 2000
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return "/"
    return value


def login_url(request: Request) -> str:
    """/login with `next` naming the page asked for (its path and query)."""
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?{urlencode({'next': wanted})}"


def guarded(
    credential: AdminCredential, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """The page handler behind the session check (see the module docstring)."""

    async def endpoint(request: Request) -> Response:
        session = credential.session(request.headers)
        if session is None:
            if "fragment" in request.query_params:
                return PlainTextResponse("signed out", 401, headers={"Cache-Control": "no-store"})
            return RedirectResponse(login_url(request), 303, headers={"Cache-Control": "no-store"})
        return await handler(request, session)

    return endpoint


def strict_cookie(
    response: Response, request: Request, name: str, value: str, *, path: str, max_age: int
) -> None:
    """Set (or, with max_age 0, delete) an HttpOnly, SameSite=Strict cookie, Secure over https."""
    secure = is_https(request.scope)
    if max_age == 0:
        response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite="strict")
        return
    response.set_cookie(
        name, value, max_age=max_age, path=path, secure=secure, httponly=True, samesite="strict"
    )


class Login:
    """The /login and /logout handlers."""

    def __init__(self, credential: AdminCredential, renderer: Renderer) -> None:
        self.credential, self.renderer = credential, renderer

    def _form(self, request: Request, status: int, message: str | None, next_path: str) -> Response:
        csrf = cookie_value(request.headers, LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        context = {"title": "Sign in", "csrf": csrf, "next": next_path, "message": message}
        response = self.renderer.page(request, "login.html", context, status)
        strict_cookie(
            response, request, LOGIN_CSRF_COOKIE, csrf, path="/login", max_age=LOGIN_CSRF_MAX_AGE_S
        )
        return response

    def _signed_in(self, request: Request, to: str) -> Response:
        assert self.credential.sessions is not None
        cookie, _ = self.credential.sessions.issue(time.time())
        response = RedirectResponse(to, 303, headers={"Cache-Control": "no-store"})
        lifetime = int(self.credential.sessions.lifetime_s)
        strict_cookie(response, request, SESSION_COOKIE, cookie, path="/", max_age=lifetime)
        if cookie_value(request.headers, LOGIN_CSRF_COOKIE) is not None:
            strict_cookie(response, request, LOGIN_CSRF_COOKIE, "", path="/login", max_age=0)
        return response

    def _starting(self) -> Response:
        return PlainTextResponse(
            "starting, try again in a moment", 503, headers={"Retry-After": "5"}
        )

    async def form(self, request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        code = request.query_params.get("code")
        if code is not None and request.method == "GET":  # a HEAD never spends a code
            if not self.credential.loaded:
                return self._starting()
            if self.credential.login_codes.redeem(code, time.time()):
                return self._signed_in(request, "/")
            spent = (
                "This sign-in link was used already or has expired: sign in with the admin token."
            )
            return self._form(request, 401, spent, next_path)
        if self.credential.session(request.headers) is not None:
            return RedirectResponse(next_path, 303)
        return self._form(request, 200, None, next_path)

    async def submit(self, request: Request) -> Response:
        if not self.credential.loaded:
            return self._starting()
        next_path = safe_next(request.query_params.get("next"))
        try:
            fields = await posted_form(request, cookie_value(request.headers, LOGIN_CSRF_COOKIE))
        except FormRefused as refused:
            return self._form(request, refused.status, refused.message, next_path)
        next_path = safe_next(fields.get("next", next_path))
        token = fields.get("token", "").strip()
        if not token:
            return self._form(request, 400, "Enter the admin token.", next_path)
        if not self.credential.accepts_token(token):
            return self._form(request, 401, "That is not the admin token.", next_path)
        return self._signed_in(request, next_path)

    async def logout(self, request: Request) -> Response:
        if not same_origin(request.scope, request.headers):
            return PlainTextResponse(CROSS_SITE, 403)
        to_login = RedirectResponse("/login", 303)
        session = self.credential.session(request.headers)
        if session is None:  # signed out already (expired, or another tab logged out)
            return to_login
        try:
            await posted_form(request, session.csrf)
        except FormRefused as refused:
            return PlainTextResponse(refused.message, refused.status)
        assert self.credential.sessions is not None
        self.credential.sessions.revoke(session, time.time())
        strict_cookie(to_login, request, SESSION_COOKIE, "", path="/", max_age=0)
        return to_login
