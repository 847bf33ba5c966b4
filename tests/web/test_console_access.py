"""The console's door, on the real app (TestClient): every page needs a session that only
the admin token (or a one-time demo code) buys; the session cookie is HttpOnly,
SameSite=Strict and signed; every POST needs the CSRF token and the console's own origin;
the cookie opens /api/ too, unsafe methods only with X-CSRF-Token."""

from __future__ import annotations

import hashlib
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from receiver.web.access import (
    SESSION_COOKIE,
    LoginCodes,
    SessionSigner,
    session_key,
)
from receiver.web.console.login import safe_next
from receiver.web.operator_api import AdminCredential
from tests.support.console import ORIGIN, PAGES, form_csrf, page_csrf, post_login, sign_in
from tests.support.operator_api import ADMIN_TOKEN, AUTH

SILENCE = {"matchers": {"rule": "SoCLow"}, "duration": "1h", "comment": "console test"}


def _set_cookies(answer: object) -> dict[str, SimpleCookie]:
    cookies: dict[str, SimpleCookie] = {}
    for header in answer.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name in jar:
            cookies[name] = jar
    return cookies


@pytest.mark.parametrize("path", [*PAGES, "/sites?id=3"])
def test_every_page_redirects_to_the_login_form_without_a_session(
    console: TestClient, path: str
) -> None:
    """Signed out, each page answers 303 to /login with `next` naming it."""
    answer = console.get(path, follow_redirects=False)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [path]


def test_a_live_fragment_without_a_session_is_401(console: TestClient) -> None:
    """The live refresh's fragment request answers 401 (the script reloads into the form)."""
    answer = console.get("/service?fragment=live", follow_redirects=False)
    assert answer.status_code == 401


def test_the_admin_token_signs_in_and_goes_to_next(console: TestClient) -> None:
    """The right token: 303 to the page asked for, whose content then shows."""
    answer = post_login(console, next="/service")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/service"
    page = console.get("/service")
    assert page.status_code == 200
    assert 'id="service-database"' in page.text
    assert ADMIN_TOKEN not in page.text


@pytest.mark.parametrize(
    ("token", "status"), [("wrong-token-0123456789", 401), (ADMIN_TOKEN + "x", 401), ("", 400)]
)
def test_a_wrong_or_missing_token_is_refused(console: TestClient, token: str, status: int) -> None:
    """A wrong token: the form again (401) with no session cookie; none at all: 400."""
    answer = post_login(console, token=token)
    assert answer.status_code == status
    assert SESSION_COOKIE not in _set_cookies(answer)
    assert 'name="token"' in answer.text
    assert console.get("/service", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_expires(console: TestClient) -> None:
    """Set-Cookie: HttpOnly, SameSite=Strict, Path=/, a 12-hour Max-Age, not Secure over http."""
    jar = _set_cookies(post_login(console))[SESSION_COOKIE]
    cookie = jar[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(12 * 3600)
    assert not cookie["secure"]
    assert ADMIN_TOKEN not in cookie.value


def test_the_session_cookie_is_secure_over_https(console_app: TestClient) -> None:
    """A request that came over https gets a Secure cookie."""
    # The same app, already started (no `with`: its lifespan runs once).
    https = TestClient(console_app.app, base_url="https://testserver")
    form = https.get("/login")
    answer = https.post(
        "/login",
        data={"csrf_token": form_csrf(form.text), "token": ADMIN_TOKEN},
        headers={"Origin": "https://testserver"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert _set_cookies(answer)[SESSION_COOKIE][SESSION_COOKIE]["secure"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "https://testserver"},  # another scheme is another origin
        {"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"},
        {"Origin": ORIGIN, "Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_cross_site_login_post_is_refused(console: TestClient, headers: dict[str, str]) -> None:
    """POST /login from another origin is 403 even with the right CSRF token and token."""
    form = console.get("/login")
    body = {"csrf_token": form_csrf(form.text), "token": ADMIN_TOKEN}
    answer = console.post("/login", data=body, headers=headers, follow_redirects=False)
    assert answer.status_code == 403
    assert SESSION_COOKIE not in _set_cookies(answer)


def test_a_login_post_without_the_csrf_token_is_refused(console: TestClient) -> None:
    """Without the double-submit value (field or cookie), or with another one: 403."""
    console.get("/login")
    headers = {"Origin": ORIGIN}
    for body in (
        {"token": ADMIN_TOKEN},
        {"token": ADMIN_TOKEN, "csrf_token": "not-the-cookie-value"},
    ):
        answer = console.post("/login", data=body, headers=headers, follow_redirects=False)
        assert answer.status_code == 403
    console.cookies.clear()
    answer = console.post(
        "/login",
        data={"token": ADMIN_TOKEN, "csrf_token": "anything"},
        headers=headers,
        follow_redirects=False,
    )
    assert answer.status_code == 403


def test_a_login_post_that_is_not_a_form_is_refused(console: TestClient) -> None:
    """JSON: 415; over 16 KiB: 413."""
    form = console.get("/login")
    csrf = form_csrf(form.text)
    headers = {"Origin": ORIGIN}
    answer = console.post("/login", json={"token": ADMIN_TOKEN}, headers=headers)
    assert answer.status_code == 415
    big = {"csrf_token": csrf, "token": "x" * 20_000}
    assert console.post("/login", data=big, headers=headers).status_code == 413


@pytest.mark.parametrize(
    ("wanted", "safe"),
    [
        ("/alerts", "/alerts"),
        ("/sites/3?x=1", "/sites/3?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_next_is_a_path_of_this_site_only(wanted: str | None, safe: str) -> None:
    """The login form is no open redirect."""
    assert safe_next(wanted) == safe


def test_logout_ends_the_session(console: TestClient) -> None:
    """POST /logout with the CSRF token: 303 to /login, the cookie deleted, and the old
    cookie value no longer opens anything (revoked)."""
    csrf = sign_in(console)
    stolen = console.cookies[SESSION_COOKIE]
    answer = console.post(
        "/logout", data={"csrf_token": csrf}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert _set_cookies(answer)[SESSION_COOKIE][SESSION_COOKIE]["max-age"] == "0"
    console.cookies.set(SESSION_COOKIE, stolen)
    assert console.get("/service", follow_redirects=False).status_code == 303
    assert console.get("/api/silences").status_code == 401


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({}, {"Origin": ORIGIN}),
        ({"csrf_token": "wrong"}, {"Origin": ORIGIN}),
        ("csrf", {"Origin": "http://evil.example"}),
    ],
)
def test_a_cross_site_logout_is_refused(
    console: TestClient, body: dict[str, str] | str, headers: dict[str, str]
) -> None:
    """A POST to /logout without the session's CSRF token, or from another origin: 403,
    and the session goes on."""
    csrf = sign_in(console)
    data = {"csrf_token": csrf} if body == "csrf" else body
    answer = console.post("/logout", data=data, headers=headers, follow_redirects=False)
    assert answer.status_code == 403
    assert console.get("/service", follow_redirects=False).status_code == 200


def test_the_session_cookie_opens_the_api_for_reading(console: TestClient) -> None:
    """GET /api/silences with the cookie alone: 200."""
    sign_in(console)
    assert console.get("/api/silences").status_code == 200


def test_a_change_through_the_api_with_the_cookie_needs_the_csrf_header(
    console: TestClient,
) -> None:
    """POST /api/silences with the cookie: 403 without X-CSRF-Token, with a wrong one, or
    from another origin; 201 with the page's token from the console's origin."""
    csrf = sign_in(console)
    assert console.post("/api/silences", json=SILENCE).status_code == 403
    wrong = {"X-CSRF-Token": "wrong"}
    assert console.post("/api/silences", json=SILENCE, headers=wrong).status_code == 403
    foreign = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    assert console.post("/api/silences", json=SILENCE, headers=foreign).status_code == 403
    right = {"X-CSRF-Token": csrf, "Origin": ORIGIN}
    made = console.post("/api/silences", json=SILENCE, headers=right)
    assert made.status_code == 201, made.text
    # Still JSON only, as with the Bearer token.
    plain = {**right, "Content-Type": "text/plain"}
    assert console.post("/api/silences", content=b"{}", headers=plain).status_code == 415


def test_the_bearer_path_is_unchanged(console: TestClient) -> None:
    """Signed out, the Bearer token alone opens the API, for changes too, with no CSRF."""
    assert console.get("/api/silences").status_code == 401
    assert console.get("/api/silences").headers["www-authenticate"] == "Bearer"
    assert console.post("/api/silences", json=SILENCE, headers=AUTH).status_code == 201


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # the signature
        lambda v: v.replace(".", ".9", 2),  # the expiry, pushed later
        lambda v: "v1.x.99999999999.sig",
        lambda v: "garbage",
    ],
)
def test_a_tampered_session_cookie_opens_nothing(console: TestClient, tamper: object) -> None:
    """A cookie whose payload or signature was changed is no session."""
    sign_in(console)
    value = console.cookies[SESSION_COOKIE]
    console.cookies.clear()
    console.cookies.set(SESSION_COOKIE, tamper(value))  # type: ignore[operator]
    assert console.get("/service", follow_redirects=False).status_code == 303
    assert console.get("/api/silences").status_code == 401


def test_a_one_time_login_code_works_once(console: TestClient) -> None:
    """The demo's code: the first GET signs in (303 to /, a session cookie), a HEAD never
    spends it, the second GET shows the form (401) without a session."""
    admin: AdminCredential = console.app.state.admin  # type: ignore[attr-defined]
    code = admin.login_codes.issue(time.time())
    assert console.head(f"/login?code={code}", follow_redirects=False).status_code == 200
    first = console.get(f"/login?code={code}", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/"
    assert SESSION_COOKIE in _set_cookies(first)
    assert console.get("/service", follow_redirects=False).status_code == 200
    console.cookies.clear()
    again = console.get(f"/login?code={code}", follow_redirects=False)
    assert again.status_code == 401
    assert SESSION_COOKIE not in _set_cookies(again)
    assert console.get(f"/login?code={ADMIN_TOKEN}", follow_redirects=False).status_code == 401


def test_login_codes_expire_and_are_spent_by_a_try() -> None:
    """A code is good until its lifetime ends, once; an expired one is refused."""
    codes = LoginCodes(lifetime_s=600)
    code = codes.issue(now=1000.0)
    assert not codes.redeem(code + "x", now=1001.0)
    assert codes.redeem(code, now=1599.0)
    assert not codes.redeem(code, now=1599.0)
    late = codes.issue(now=1000.0)
    assert not codes.redeem(late, now=1600.0)


def test_sessions_expire_and_a_new_admin_token_ends_them() -> None:
    """A cookie opens until its expiry; under the key of another admin token, never."""
    signer = SessionSigner(session_key("kept", "token-one-0123456789"), lifetime_s=3600)
    cookie, session = signer.issue(now=1000.0)
    assert signer.open(cookie, now=4599.0) == session
    assert signer.open(cookie, now=4600.0) is None
    rotated = SessionSigner(session_key("kept", "token-two-0123456789"))
    assert rotated.open(cookie, now=1001.0) is None
    signer.revoke(session, now=1001.0)
    assert signer.open(cookie, now=1002.0) is None
    assert "kept" not in repr(signer)
    assert session.id not in repr(session)


def test_static_assets_have_versioned_urls_and_long_cache_headers(console: TestClient) -> None:
    """Each asset the pages link is at /static/<content hash>/<name>, cached for a year
    (immutable); another hash or an unknown name is a 404. The pages themselves are not
    cached and carry a strict Content-Security-Policy."""
    page = console.get("/login")
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    linked = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    assert {url.rsplit("/", 1)[1] for url in linked} == {"console.css", "console.js", "favicon.svg"}
    for url in linked:
        _, _, digest, name = url.split("/")
        answer = console.get(url)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert hashlib.sha256(answer.content).hexdigest().startswith(digest)
        stale = console.get(f"/static/000000000000/{name}")
        assert stale.status_code == 404
    assert console.get(linked[0].rsplit("/", 1)[0] + "/nothing.css").status_code == 404
    icon = console.get("/favicon.ico", follow_redirects=False)
    assert icon.status_code == 301
    assert icon.headers["location"] in linked


def test_pages_fragments_and_the_site_box(console: TestClient) -> None:
    """Signed in: each page renders (an unknown site is a 404 page), a live fragment is a
    fragment, and the navigation's site box goes to /sites/N or says what is wrong (400)."""
    csrf = sign_in(console)
    for path in ("/", "/alerts", "/webhooks", "/service"):
        page = console.get(path)
        assert page.status_code == 200, path
        assert page_csrf(page.text) == csrf
        assert 'aria-current="page"' in page.text
    assert console.get("/sites/424242").status_code == 404
    fragment = console.get("/service?fragment=live")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'id="service-writer"' in fragment.text
    assert console.get("/alerts?fragment=other").status_code == 404
    jump = console.get("/sites?id=3", follow_redirects=False)
    assert (jump.status_code, jump.headers["location"]) == (303, "/sites/3")
    assert console.get("/sites?id=three", follow_redirects=False).status_code == 400
