"""The console's data pages through the real app (TestClient, SQLite, frozen clock): the
Fleet page filters, sorts and pages on the server and its live fragment holds only the
page asked for; the Site page draws stored measurements; Alerts offers a silence per
alert and shows it silenced; Webhooks shows a raw body and replays a time range only
with the CSRF token; bad input is a 400 naming the parameter.

The fleet is fed through its real entry points (a portfolio poll, an availability poll),
history through the production write functions and a real webhook."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from receiver.cellect.timestamps import format_timestamp
from receiver.service import Monitor
from receiver.storage.alerts import upsert_alert
from receiver.storage.engine import session_factory
from receiver.storage.sites import record_measurements, upsert_sites
from receiver.web.app import WEBHOOK_PATH
from tests.support.console import ORIGIN, form_csrf, sign_in
from tests.support.operator_api import AUTH
from tests.support.records import outage, site_info
from tests.support.stack import START, WEBHOOK_SECRET

SITES = 30
DOWN = 7  # the site with an open outage
MEASURED = 3  # the site with a stored day of measurements
ROW = re.compile(r'<tr class="site-row state-(\w+)" data-site="(\d+)">')


def _monitor(client: TestClient) -> Monitor:
    monitor: Monitor = client.app.state.monitor  # type: ignore[attr-defined]
    return monitor


@pytest.fixture(scope="module")
def fleet_app(console_app: TestClient) -> TestClient:
    """30 sites in the live picture (SoC = 3 × id), site 7 down, site 3 with history,
    an alert about site 3, a webhook delivery of site 3; signed in."""
    monitor = _monitor(console_app)
    infos = [site_info(i, soc=float(3 * i), power=float(i - 15)) for i in range(1, SITES + 1)]
    monitor.metrics.update_sites(monitor.fleet.portfolio_polled(infos))
    monitor.fleet.availability_polled(DOWN, [outage(DOWN, 1, START - timedelta(hours=1), None)])
    with session_factory(monitor.database)() as session:
        upsert_sites(session=session, sites=infos, seen_at=START)
        for minute in range(0, 24 * 60, 5):
            at = START - timedelta(days=1) + timedelta(minutes=minute)
            record_measurements(
                session=session,
                sites=[site_info(MEASURED, soc=float(minute % 100))],
                measured_at=at,
            )
        upsert_alert(
            session=session, fingerprint="pages-1", rule="PagesTest", severity="warning",
            labels={"site_id": str(MEASURED)}, annotations={"summary": "a test alert"},
            state="firing", at=START,
        )  # fmt: skip
        session.commit()
    begins = START + timedelta(hours=1)
    slot = {
        "start": format_timestamp(begins),
        "end": format_timestamp(begins + timedelta(minutes=15)),
        "status": 1,
    }
    answer = console_app.post(
        WEBHOOK_PATH,
        json={"siteId": MEASURED, "schedule": [slot]},
        headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
    )
    assert answer.status_code == 200, answer.text
    sign_in(console_app)
    return console_app


def _rows(html: str) -> list[tuple[str, int]]:
    return [(state, int(site)) for state, site in ROW.findall(html)]


def test_the_fleet_is_paged_on_the_server(fleet_app: TestClient) -> None:
    """10 rows a page: page 1 is sites 1–10 with a next link, page 3 the last ten."""
    first = fleet_app.get("/?per=10")
    assert first.status_code == 200
    assert [s for _, s in _rows(first.text)] == list(range(1, 11))
    assert 'id="page-next"' in first.text
    last = fleet_app.get("/?per=10&page=3")
    assert [s for _, s in _rows(last.text)] == list(range(21, 31))
    assert 'id="page-next"' not in last.text
    assert f'<dd id="site-count">{SITES}</dd>' in last.text


def test_the_live_fragment_holds_only_the_page_asked_for(fleet_app: TestClient) -> None:
    """?fragment=live with the page's own query: its rows alone, no page around them; the
    page's live region asks for exactly that URL."""
    page = fleet_app.get("/?per=10&page=2&sort=-soc")
    assert 'data-live="/?per=10&amp;page=2&amp;sort=-soc&amp;fragment=live"' in page.text
    fragment = fleet_app.get("/?per=10&page=2&sort=-soc&fragment=live")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert [s for _, s in _rows(fragment.text)] == list(range(20, 10, -1))


def test_the_fleet_sorts_and_filters(fleet_app: TestClient) -> None:
    """By SoC descending, by a name, by state: the down site is the unavailable one."""
    by_soc = _rows(fleet_app.get("/?sort=-soc&per=10").text)
    assert by_soc[0][1] == SITES
    named = _rows(fleet_app.get("/?q=site+2").text)
    assert {s for _, s in named} == {2, *range(20, 30)}
    assert ("unavailable", DOWN) in _rows(fleet_app.get(f"/?q={DOWN}").text)
    down = _rows(fleet_app.get("/?state=unavailable").text)
    assert down == [("unavailable", DOWN)]
    assert len(_rows(fleet_app.get("/?state=available&per=50").text)) == SITES - 1
    assert _rows(fleet_app.get("/?state=stale").text) == []
    by_state = _rows(fleet_app.get("/?sort=-state&per=10").text)
    assert by_state[0] == ("unavailable", DOWN)


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=bogus", "state"), ("sort=colour", "sort"), ("page=0", "page"), ("per=7", "per"),
     ("alerting=maybe", "alerting"), ("q=" + "x" * 101, "q"), ("colour=red", "colour")],
)  # fmt: skip
def test_bad_fleet_input_is_a_400_naming_the_field(
    fleet_app: TestClient, query: str, field: str
) -> None:
    answer = fleet_app.get(f"/?{query}")
    assert answer.status_code == 400
    assert f'role="alert">{field}:' in answer.text


def test_the_site_page_draws_stored_measurements(fleet_app: TestClient) -> None:
    """The chart of the last 24 h has points; the schedule entry the webhook made shows;
    a range past the menu is a 400, an unknown site a 404."""
    page = fleet_app.get(f"/sites/{MEASURED}?range=24h")
    assert page.status_code == 200
    points = re.search(r'data-points="(\d+)"', page.text)
    assert points is not None
    assert int(points.group(1)) > 100
    assert 'class="st-inprogress"' in page.text
    assert "PagesTest" in page.text
    assert fleet_app.get(f"/sites/{MEASURED}?range=1y").status_code == 400
    assert fleet_app.get("/sites/9999").status_code == 404


def test_a_silence_from_the_alerts_page_mutes_its_alert(fleet_app: TestClient) -> None:
    """The Alerts page offers a silence with the alert's labels as matchers; once made
    (the page's script posts it to /api/silences), the alert shows silenced."""
    page = fleet_app.get("/alerts")
    found = re.search(r'<form class="silence-form" data-matchers="([^"]+)"', page.text)
    assert found is not None, page.text
    matchers = found.group(1).replace("&#34;", '"')
    assert '"rule": "PagesTest"' in matchers
    assert '"site_id": "3"' in matchers
    spec = {"matchers": {"rule": "PagesTest", "site_id": "3"}, "duration": "1h", "comment": "t"}
    assert fleet_app.post("/api/silences", json=spec, headers=AUTH).status_code == 201
    assert 'class="state warn silenced"' not in page.text
    assert 'class="state warn silenced"' in fleet_app.get("/alerts").text


def test_webhooks_shows_a_raw_body_and_replays_only_with_the_csrf_token(
    fleet_app: TestClient,
) -> None:
    page = fleet_app.get("/webhooks")
    first = re.search(r'href="/webhooks\?delivery=(\d+)"', page.text)
    assert first is not None
    raw = fleet_app.get(f"/webhooks?delivery={first.group(1)}")
    assert '"siteId"' in raw.text.replace("&#34;", '"')
    since = format_timestamp(START - timedelta(hours=1))
    csrf = form_csrf(page.text.split('class="replay"', 1)[1])
    headers = {"Origin": ORIGIN}
    refused = fleet_app.post("/webhooks/replay", data={"since": since}, headers=headers)
    assert refused.status_code == 403
    bad = fleet_app.post("/webhooks/replay", data={"since": "yesterday", "csrf_token": csrf},
                         headers=headers)  # fmt: skip
    assert bad.status_code == 400
    assert "since:" in bad.text
    done = fleet_app.post("/webhooks/replay", data={"since": since, "csrf_token": csrf},
                          headers=headers)  # fmt: skip
    assert done.status_code == 200
    assert "Replayed 1 deliveries" in done.text
    assert fleet_app.get("/webhooks?delivery=x").status_code == 400


def test_the_service_page_shows_tokens_outbox_and_database(fleet_app: TestClient) -> None:
    page = fleet_app.get("/service")
    for part in ('id="service-access-token"', 'id="service-outbox"', "(sqlite)"):
        assert part in page.text
