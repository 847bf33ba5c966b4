"""The console's data pages in headless Chromium against `cellect-monitor run --emulator`
(×60): the Fleet table shows the emulated sites and turns a site's row red once the demo
cuts its box off; the Site page's chart has data points; a silence made from the Alerts
page in one click is in /api/silences and shows its alert silenced; the Webhooks page
replays a time range (and the same POST without the CSRF token is refused). Every page
with no console error. Screenshots in test-artifacts/ (the fleet's also for the docs)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import ConsoleTab, emulator_url, post_schedule
from tests.support.operator_api import AUTH
from tests.support.product import Product

pytestmark = pytest.mark.browser
SITES = 5  # the demo's sites
WITHIN_MS = 90_000  # polls, the events poll and an alert's `for` at ×60, on a busy machine


def test_the_fleet_shows_the_sites_and_a_site_cut_off_turns_red(
    signed_in: ConsoleTab, demo_product: Product
) -> None:
    """Five rows with SoC and state; cutting box 1 off (the demo's control API) turns its
    row unavailable or stale — red, never live — through the live refresh alone."""
    page = signed_in.page
    expect(page.locator("tr.site-row")).to_have_count(SITES, timeout=WITHIN_MS)
    expect(page.locator('tr.site-row[data-site="1"] meter')).to_have_count(1, timeout=WITHIN_MS)
    signed_in.screenshot("fleet")
    answer = httpx.post(f"{emulator_url(demo_product)}/_emulator/sites/1/box",
                        json={"online": False}, timeout=10)  # fmt: skip
    assert answer.status_code < 300, answer.text
    row = page.locator('tr.site-row[data-site="1"]')
    expect(row).to_have_class(re.compile(r"state-(unavailable|stale)"), timeout=WITHIN_MS)
    signed_in.screenshot("fleet-box-cut")
    page.locator("#fleet-state").select_option("available")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"state=available"))
    expect(page.locator('tr.site-row[data-site="1"]')).to_have_count(0)


def test_the_site_page_charts_stored_measurements(signed_in: ConsoleTab) -> None:
    """The chart of site 2 gets data points as polls store measurements (the live region
    redraws it); the 7-day range opens from its link."""
    page = signed_in.page
    signed_in.goto("/sites/2?range=6h")
    expect(page.locator("svg.chart polyline.soc")).to_have_count(1, timeout=WITHIN_MS)
    points = page.locator("svg.chart").get_attribute("data-points")
    assert points is not None
    assert int(points) > 0
    signed_in.screenshot("site")
    page.locator("#range-7d").click()
    expect(page).to_have_url(re.compile(r"range=7d$"))
    expect(page.locator("svg.chart")).to_have_count(1)


def test_a_silence_from_the_alerts_page_mutes_its_alert(
    signed_in: ConsoleTab, demo_product: Product
) -> None:
    """With an alert firing (box 1 cut off), its form makes a silence in one click: the
    silence is in /api/silences (admin token) and the alert shows silenced."""
    httpx.post(f"{emulator_url(demo_product)}/_emulator/sites/1/box",
               json={"online": False}, timeout=10)  # fmt: skip
    page = signed_in.page
    signed_in.goto("/alerts")
    form = page.locator("form.silence-form").first
    expect(form).to_be_visible(timeout=WITHIN_MS)
    form.locator("input[name=comment]").fill("muted from the browser test")
    form.get_by_role("button", name="Silence").click()
    expect(page.locator(".silenced").first).to_be_visible(timeout=WITHIN_MS)
    signed_in.screenshot("alerts-silenced")
    listed = httpx.get(f"{demo_product.url}/api/silences", headers=AUTH, timeout=10).json()
    assert any(s["comment"] == "muted from the browser test" for s in listed["silences"])
    expire = page.locator("button[data-expire]").first
    expire.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".silenced")).to_have_count(0, timeout=WITHIN_MS)


def test_webhooks_replays_a_range_and_refuses_it_without_the_csrf_token(
    signed_in: ConsoleTab, demo_product: Product
) -> None:
    """A schedule posted to a demo site comes back as status webhooks: a delivery's raw
    body opens, the replay form answers what it did, and the same POST without the token
    is a 403."""
    post_schedule(demo_product, 3)
    page = signed_in.page
    signed_in.goto("/webhooks")
    expect(page.locator("tr.delivery").first).to_be_visible(timeout=WITHIN_MS)
    page.locator("tr.delivery a").first.click()
    expect(page.locator("#raw-body")).to_contain_text("siteId")
    signed_in.goto("/webhooks")
    page.locator("#replay-since").fill("2000-01-01T00:00:00Z")
    page.locator("#replay-go").click()
    expect(page.locator(".message")).to_contain_text("Replayed")
    signed_in.screenshot("webhooks-replayed")
    status = page.evaluate(
        "fetch('/webhooks/replay', {method: 'POST', headers: {'Content-Type':"
        " 'application/x-www-form-urlencoded'}, body: 'since=2000-01-01T00:00:00Z'})"
        ".then(r => r.status)"
    )
    assert status == 403
    signed_in.refused_as_expected(403)


def test_every_data_page_renders(signed_in: ConsoleTab) -> None:
    """Each data page renders without console errors; the service page shows the new facts
    (the demo runs on SQLite: one monitor, its role "single")."""
    for path in ("/", "/sites/1", "/alerts", "/webhooks", "/service"):
        signed_in.goto(path)
        expect(signed_in.page.locator("h1")).to_be_visible()
    expect(signed_in.page.locator("#service-outbox")).to_contain_text("pending")
    expect(signed_in.page.locator("#service-replica")).to_contain_text("single")
    expect(signed_in.page.locator("#replicas-single")).to_contain_text("One monitor (SQLite)")
