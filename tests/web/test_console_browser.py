"""The console in headless Chromium against `cellect-monitor run --emulator`: each page
renders with no console error and shows the demo's sites or the service's state; signing
in, a wrong token, logging out, a cross-site POST, the cookie's flags, the demo's one-time
sign-in URL, local times and the live refresh, as a person's browser sees them.
Screenshots land in test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Route, expect

from receiver.web.access import SESSION_COOKIE
from tests.support.browser import ConsoleTab, artefact_dir, console_tab, demo_login_url
from tests.support.product import Product

pytestmark = pytest.mark.browser
SITES = "5"  # the demo's sites (`run --emulator`, --sites 5)
WITHIN_MS = 60_000  # the first polls of a demo that just started, on a busy machine
EVIL = "http://evil.example"
SILENCE = {"matchers": {"rule": "SoCLow"}, "duration": "1h", "comment": "from the console"}


def test_each_page_renders_and_shows_the_fleet_or_the_service(signed_in: ConsoleTab) -> None:
    """Fleet counts the five emulated sites (its live region fills in as polls arrive),
    a site's page opens from it, and Alerts, Webhooks and Service render through the
    navigation; Service shows the database reachable, the writer up, the sites known."""
    page = signed_in.page
    expect(page.locator("h1")).to_have_text("Fleet")
    expect(page.locator("#site-count")).to_have_text(SITES, timeout=WITHIN_MS)
    signed_in.screenshot("fleet")
    page.locator("tr.site-row a").first.click()
    expect(page).to_have_url(re.compile(r"/sites/\d+$"))
    expect(page.locator("#site-id")).to_have_text(re.compile(r"^\d+$"))
    signed_in.screenshot("site")
    for name in ("Alerts", "Webhooks", "Service"):
        page.get_by_role("navigation").get_by_role("link", name=name).click()
        expect(page.locator("h1")).to_have_text(name)
        expect(page.get_by_role("link", name=name)).to_have_attribute("aria-current", "page")
        signed_in.screenshot(name.lower())
    expect(page.locator("#service-database")).to_contain_text("reachable")
    expect(page.locator("#service-writer")).to_contain_text("up")
    expect(page.locator("#service-sites")).to_have_text(SITES, timeout=WITHIN_MS)


def test_the_site_box_of_the_navigation_opens_a_site(signed_in: ConsoleTab) -> None:
    """Typing a site id in the navigation's box (keyboard only) opens its page."""
    page = signed_in.page
    expect(page.locator("#site-count")).to_have_text(SITES, timeout=WITHIN_MS)
    page.locator("#site-jump").fill("2")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/sites/2$"))
    expect(page.locator("#site-id")).to_have_text("2")


def test_a_page_needs_signing_in_and_a_wrong_token_is_refused(tab: ConsoleTab) -> None:
    """Signed out, /service shows the login form; a wrong token keeps it there with a
    message (401); the right one lands on /service."""
    tab.goto("/service")
    expect(tab.page).to_have_url(re.compile(r"/login\?next=%2Fservice$"))
    tab.page.fill("#token", "not-the-admin-token-0123")
    with tab.page.expect_response(lambda r: r.request.method == "POST") as posted:
        tab.page.click("form.login button[type=submit]")
    assert posted.value.status == 401
    tab.refused_as_expected(401)
    expect(tab.page.locator(".message")).to_contain_text("not the admin token")
    tab.screenshot("refused")
    tab.page.fill("#token", "test-admin-token-0123456789")
    tab.page.click("form.login button[type=submit]")
    expect(tab.page).to_have_url(re.compile(r"/service$"))
    expect(tab.page.locator("h1")).to_have_text("Service")


def test_logging_out_ends_the_session(signed_in: ConsoleTab) -> None:
    """Log out (reached with the keyboard) → the login form, and pages need signing in again."""
    page = signed_in.page
    page.get_by_role("button", name="Log out").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/login$"))
    assert SESSION_COOKIE not in {c["name"] for c in signed_in.context.cookies()}
    signed_in.goto("/alerts")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_the_session_cookie_is_httponly_and_samesite_strict(signed_in: ConsoleTab) -> None:
    """The browser holds the session cookie as HttpOnly, SameSite=Strict, for the whole site;
    the page's script cannot read it."""
    (cookie,) = [c for c in signed_in.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert SESSION_COOKIE not in signed_in.page.evaluate("document.cookie")


def test_a_cross_site_post_is_refused(signed_in: ConsoleTab, demo_product: Product) -> None:
    """A page of another site that posts a form to the console (here: to log the operator
    out) gets 403 — and the session goes on."""
    hostile = (
        f'<form id="f" method="post" action="{demo_product.url}/logout">'
        '<input name="csrf_token" value="guessed"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )

    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=hostile)

    page = signed_in.page
    page.route(f"{EVIL}/**", serve)
    with page.expect_response(f"{demo_product.url}/logout") as posted:
        signed_in.goto(f"{EVIL}/")
    assert posted.value.status == 403
    signed_in.refused_as_expected(403)
    signed_in.goto("/service")
    expect(page.locator("h1")).to_have_text("Service")


def test_the_console_script_changes_things_through_the_api_with_its_csrf_token(
    signed_in: ConsoleTab,
) -> None:
    """CellectConsole.request posts JSON to /api/ with the session cookie and the page's
    CSRF token (201); the same call without the token is refused (403)."""
    page = signed_in.page
    made = page.evaluate(
        "s => CellectConsole.request('/api/silences', {method: 'POST', json: s})"
        ".then(r => r.status)",
        SILENCE,
    )
    assert made == 201
    bare = page.evaluate(
        "s => fetch('/api/silences', {method: 'POST', body: JSON.stringify(s),"
        " headers: {'Content-Type': 'application/json'}}).then(r => r.status)",
        SILENCE,
    )
    assert bare == 403
    signed_in.refused_as_expected(403)
    listed = page.evaluate("CellectConsole.request('/api/silences').then(r => r.json())")
    assert any(s["comment"] == SILENCE["comment"] for s in listed["silences"])


def test_the_demo_sign_in_url_works_once(
    browser: Browser, demo_product: Product, request: pytest.FixtureRequest
) -> None:
    """The URL the demo printed signs a browser in and lands on the fleet; the same URL
    a second time (another browser) shows the login form with a message, signed out."""
    url = demo_login_url(demo_product)
    artefacts = artefact_dir(request.node.name)
    with console_tab(browser, demo_product.url, artefacts) as first:
        first.goto(url)
        expect(first.page).to_have_url(f"{demo_product.url}/")
        expect(first.page.locator("h1")).to_have_text("Fleet")
    with console_tab(browser, demo_product.url, artefacts) as second:
        assert second.goto(url).status == 401
        second.refused_as_expected(401)
        expect(second.page.locator(".message")).to_contain_text("used already")
        assert SESSION_COOKIE not in {c["name"] for c in second.context.cookies()}
    assert first.errors == []
    assert second.errors == []
    # The access log masks the code (the demo's own line is the one place it shows).
    assert demo_product.output().count(url.rsplit("=", 1)[1]) == 1


def test_times_are_shown_in_the_browsers_zone_with_utc_on_hover(
    browser: Browser, demo_product: Product, request: pytest.FixtureRequest
) -> None:
    """In a browser set to Asia/Kolkata (UTC+05:30), each <time> shows a local time, and its
    title the UTC time the server wrote."""
    artefacts = artefact_dir(request.node.name)
    with console_tab(
        browser, demo_product.url, artefacts, timezone_id="Asia/Kolkata", locale="en-GB"
    ) as tab:
        tab.sign_in(path="/service")
        first = tab.page.locator("time").first
        expect(first).to_have_attribute("title", re.compile(r" UTC$"))
        title, text = first.get_attribute("title"), first.inner_text()
        assert title is not None
        assert "UTC" not in text
        assert text != title
        tab.screenshot("kolkata")
    assert tab.errors == []


def test_the_pages_work_on_a_phone_in_dark_mode(
    browser: Browser, demo_product: Product, request: pytest.FixtureRequest
) -> None:
    """A 390 px wide touch screen in dark mode: the page does not scroll sideways and the
    dark palette applies."""
    artefacts = artefact_dir(request.node.name)
    with console_tab(
        browser,
        demo_product.url,
        artefacts,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    ) as tab:
        tab.sign_in(path="/service")
        expect(tab.page.locator("h1")).to_have_text("Service")
        wide = tab.page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 390
        background = tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 150, background
        tab.screenshot("phone-dark")
    assert tab.errors == []


def test_static_assets_are_versioned_and_cached(signed_in: ConsoleTab) -> None:
    """The stylesheet, script and icon come from /static/<hash>/… with a year's immutable
    caching."""
    page = signed_in.page
    urls = page.evaluate(
        '[...document.querySelectorAll(\'link[href^="/static/"], script[src^="/static/"]\')]'
        ".map(e => e.href || e.src)"
    )
    assert len(urls) == 3
    for url in urls:
        assert re.search(r"/static/[0-9a-f]{12}/[\w.]+$", url), url
        answer = page.request.get(url)
        assert answer.status == 200
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_a_live_region_refreshes_in_place(signed_in: ConsoleTab) -> None:
    """The Service page's live region fetches its fragment again and swaps it in without
    reloading the page (a value set on the window survives, the monitor's clock moved)."""
    page = signed_in.page
    signed_in.goto("/service")
    clock = page.locator("#service-clock time")  # the monitor's clock: ×60 in the demo
    before = clock.get_attribute("datetime")
    page.evaluate("window.stillHere = true")
    # Resolved in the page on the second refresh (bounded): wait_for_function would need
    # eval, which the console's Content-Security-Policy forbids.
    refreshed = page.evaluate(
        """within => new Promise((done, fail) => {
            let seen = 0;
            document.addEventListener("console:refreshed", () => { if (++seen >= 2) done(seen); });
            setTimeout(() => fail(new Error("no refresh within " + within + " ms")), within);
        })""",
        WITHIN_MS,
    )
    assert refreshed == 2
    assert page.evaluate("window.stillHere") is True
    assert clock.get_attribute("datetime") != before
    assert (clock.get_attribute("title") or "").endswith(" UTC")


def test_no_secret_reaches_the_products_output(
    signed_in: ConsoleTab, demo_product: Product
) -> None:
    """Signed in and using every page: neither the admin token nor the session cookie nor
    the CSRF token appears in the monitor's output (its access log included)."""
    for path in ("/service?fragment=live", "/", "/alerts", "/webhooks", "/service"):
        signed_in.goto(path)
    (cookie,) = [c for c in signed_in.context.cookies() if c["name"] == SESSION_COOKIE]
    csrf = signed_in.page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert csrf
    output = demo_product.output()
    for secret in ("test-admin-token-0123456789", cookie["value"], csrf):
        assert secret not in output
