"""The console under test without a browser: the real app through TestClient, signed in
through its real login form."""

from __future__ import annotations

import re

import httpx
from starlette.testclient import TestClient

from receiver.web.access import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from tests.support.operator_api import ADMIN_TOKEN

ORIGIN = "http://testserver"  # TestClient's own origin
PAGES = ("/", "/sites/1", "/alerts", "/webhooks", "/service")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def form_csrf(html: str) -> str:
    """The csrf_token field of the (first) form in a page."""
    found = _CSRF.search(html)
    assert found is not None, html
    return found.group(1)


def page_csrf(html: str) -> str:
    """The session's CSRF token a signed-in page carries for its JavaScript."""
    found = _META_CSRF.search(html)
    assert found is not None, html
    return found.group(1)


def post_login(
    client: TestClient, token: str = ADMIN_TOKEN, origin: str = ORIGIN, **fields: str
) -> httpx.Response:
    """GET the login form, then POST it back with `token` (same origin by default)."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    body = {"csrf_token": form_csrf(form.text), "token": token, **fields}
    return client.post("/login", data=body, headers={"Origin": origin}, follow_redirects=False)


def sign_in(client: TestClient) -> str:
    """Sign `client` in through the form; the session's CSRF token."""
    answer = post_login(client)
    assert answer.status_code == 303, answer.text
    return page_csrf(client.get("/service").text)


def sign_out(client: TestClient) -> None:
    """Forget any session and login cookie the client holds."""
    for name in (SESSION_COOKIE, LOGIN_CSRF_COOKIE):
        client.cookies.delete(name)
