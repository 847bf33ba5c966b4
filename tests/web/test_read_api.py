"""The read API (/api/v1) through the real app on SQLite and PostgreSQL: schedules from real
webhooks, history written by the production write functions, JSON pages, CSV exports, the
admin token, and bad input refused with a 4xx naming the field."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from receiver.cellect.timestamps import format_timestamp
from receiver.storage.alerts import upsert_alert
from receiver.storage.engine import session_factory
from receiver.storage.events import upsert_availability_events
from receiver.storage.outbox import enqueue_message
from receiver.storage.sites import record_measurements, upsert_sites
from receiver.web.app import WEBHOOK_PATH
from tests.support.operator_api import AUTH
from tests.support.records import outage, site_info
from tests.support.stack import START, WEBHOOK_SECRET

MINUTE = timedelta(minutes=1)
QUARTER = timedelta(minutes=15)
SITE = 501  # this module's sites: 501 (measured, scheduled, down), 502 (webhooks only), 503
HOOK = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}


def _store(api: TestClient) -> Engine:
    engine: Engine = api.app.state.monitor.database  # type: ignore[attr-defined]
    return engine


def _webhook(api: TestClient, site_id: int, *entries: tuple[int, int]) -> None:
    """Post one webhook: (slot, status) pairs of 15-minute slots from START + 1 h."""
    schedule = [
        {"start": format_timestamp(START + timedelta(hours=1) + slot * QUARTER),
         "end": format_timestamp(START + timedelta(hours=1) + (slot + 1) * QUARTER),
         "status": status}
        for slot, status in entries
    ]  # fmt: skip
    answer = api.post(WEBHOOK_PATH, json={"siteId": site_id, "schedule": schedule}, headers=HOOK)
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def filled(api: TestClient) -> TestClient:
    """The module's app with history: a day of 1-minute measurements of SITE, an open
    outage, schedules by webhook, an alert and its notification."""
    with session_factory(_store(api))() as session:
        named = [site_info(SITE, name="=cmd"), site_info(SITE + 2)]
        upsert_sites(session=session, sites=named, seen_at=START)
        for minute in range(24 * 60):
            at = START - timedelta(days=1) + minute * MINUTE
            site = site_info(SITE, soc=float(minute % 100), power=float(minute % 5))
            record_measurements(session=session, sites=[site], measured_at=at)
        down = outage(SITE, 77, START - timedelta(hours=2), None)
        upsert_availability_events(session=session, site_id=SITE, events=[down], seen_at=START)
        upsert_alert(
            session=session, fingerprint="read-api-1", rule="ReadApiTest", severity="warning",
            labels={"site_id": str(SITE)}, annotations={"summary": "test"}, state="firing",
            at=START,
        )  # fmt: skip
        enqueue_message(session=session, group_key="ReadApiTest/warning", title="fired",
                        body="site 501", tags=["warning"], now=START)  # fmt: skip
        session.commit()
    _webhook(api, SITE, (0, 1), (1, 1))
    _webhook(api, SITE, (0, 5), (1, 2))
    _webhook(api, SITE, (0, 1))  # slot 0 re-planned: a second generation
    _webhook(api, 502, (0, 3))
    return api


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


ROUTES = [
    "/api/v1/sites", f"/api/v1/sites/{SITE}", f"/api/v1/sites/{SITE}/measurements",
    f"/api/v1/sites/{SITE}/schedule", f"/api/v1/sites/{SITE}/events", "/api/v1/deliveries",
    "/api/v1/deliveries/1", "/api/v1/alerts", "/api/v1/alerts/1",
    "/api/v1/alerts/1/notifications",
]  # fmt: skip


@pytest.mark.parametrize("path", ROUTES)
def test_every_read_needs_the_admin_token(filled: TestClient, path: str) -> None:
    """Without the token (or with the webhook secret instead) every route is 401."""
    for headers in ({}, HOOK):
        answer = filled.get(path, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
    assert filled.get(path, headers=AUTH).status_code == 200


def test_sites_show_the_latest_measurement_and_the_open_outage(filled: TestClient) -> None:
    """The site list and one site: the newest measurement, unavailable since the outage."""
    listed = filled.get("/api/v1/sites", headers=AUTH).json()
    assert listed["next"] is None
    [site] = [s for s in listed["items"] if s["site_id"] == SITE]
    assert site["measured_at"] == (START - MINUTE).isoformat()
    assert (site["soc_pct"], site["available"]) == (float(1439 % 100), False)
    assert site["unavailable_since"] == (START - timedelta(hours=2)).isoformat()
    assert filled.get(f"/api/v1/sites/{SITE}", headers=AUTH).json() == site
    exported = filled.get("/api/v1/sites?format=csv", headers=AUTH)
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="sites.csv"' in exported.headers["content-disposition"]
    [row] = [r for r in _csv(exported.text) if r["site_id"] == str(SITE)]
    assert (row["name"], row["available"]) == ("'=cmd", "false")  # no formula in a spreadsheet


def test_measurements_downsampled_raw_and_exported(filled: TestClient) -> None:
    """A day of 1-minute rows as 24 hourly buckets; the raw rows of an hour a page at a time;
    the same as CSV."""
    day = {"from": (START - timedelta(days=1)).isoformat(), "to": START.isoformat()}
    path = f"/api/v1/sites/{SITE}/measurements"
    chart = filled.get(path, params={**day, "points": 24}, headers=AUTH).json()
    assert (chart["width_s"], len(chart["items"]), chart["next"]) == (3600, 24, None)
    assert {b["samples"] for b in chart["items"]} == {60}
    hour = {"from": (START - timedelta(hours=1)).isoformat(), "to": START.isoformat()}
    first = filled.get(path, params={**hour, "limit": 50}, headers=AUTH).json()
    second = filled.get(path, params={**hour, "cursor": first["next"]}, headers=AUTH).json()
    assert (len(first["items"]), len(second["items"]), second["next"]) == (50, 10, None)
    exported = filled.get(path, params={**hour, "format": "csv"}, headers=AUTH)
    assert 'filename="site-501-measurements.csv"' in exported.headers["content-disposition"]
    rows = _csv(exported.text)
    assert [r["measured_at"] for r in rows] == [
        m["measured_at"] for m in first["items"] + second["items"]
    ]
    buckets = filled.get(path, params={**day, "points": 2, "format": "csv"}, headers=AUTH)
    assert [r["samples"] for r in _csv(buckets.text)] == ["720", "720"]


def test_schedule_every_generation_with_history_and_the_planned_vs_executed_export(
    filled: TestClient,
) -> None:
    """Slot 0 (1, 5, then 1 again) is two entries; slot 1 went 1 → 2; each with its
    history; the CSV has a row per entry with status and planned power."""
    path = f"/api/v1/sites/{SITE}/schedule"
    entries = filled.get(path, headers=AUTH).json()["items"]
    assert [(e["generation"], e["status_name"]) for e in entries] == [
        (0, "Overwritten"), (1, "InProgress"), (0, "Implemented"),
    ]  # fmt: skip
    assert [h["status"] for h in entries[0]["history"]] == [1, 5]
    assert all(h["source"] == "webhook" for e in entries for h in e["history"])
    paged = filled.get(path, params={"limit": 2}, headers=AUTH).json()
    rest = filled.get(path, params={"cursor": paged["next"]}, headers=AUTH).json()
    assert [e["id"] for e in paged["items"] + rest["items"]] == [e["id"] for e in entries]
    window = {"from": (START + timedelta(hours=1) + QUARTER).isoformat()}
    assert len(filled.get(path, params=window, headers=AUTH).json()["items"]) == 1
    exported = _csv(filled.get(path, params={"format": "csv"}, headers=AUTH).text)
    assert [(r["generation"], r["status"], r["planned_power_kw"]) for r in exported] == [
        ("0", "5", ""), ("1", "1", ""), ("0", "2", ""),
    ]  # fmt: skip
    assert filled.get("/api/v1/sites/502/schedule", headers=AUTH).status_code == 200


def test_events_deliveries_and_one_delivery_with_its_body(filled: TestClient) -> None:
    """The open outage; the deliveries newest first, of one site; one with its raw body."""
    events = filled.get(f"/api/v1/sites/{SITE}/events", headers=AUTH).json()["items"]
    assert [(e["event_id"], e["end_at"], e["reason_name"]) for e in events] == [
        (77, None, "Outage")
    ]
    mine = filled.get("/api/v1/deliveries", params={"site": SITE}, headers=AUTH).json()
    assert len(mine["items"]) == 3
    assert [d["id"] for d in mine["items"]] == sorted((d["id"] for d in mine["items"]), reverse=1)
    one = filled.get(f"/api/v1/deliveries/{mine['items'][0]['id']}", headers=AUTH).json()
    assert json.loads(one["body"])["siteId"] == SITE
    exported = filled.get("/api/v1/deliveries?format=csv&site=502", headers=AUTH)
    assert [r["site_id"] for r in _csv(exported.text)] == ["502"]


def test_alerts_and_the_notifications_of_their_group(filled: TestClient) -> None:
    """The firing alert is listed; its group's message is its notification."""
    firing = filled.get("/api/v1/alerts", headers=AUTH).json()["items"]
    [mine] = [a for a in firing if a["rule"] == "ReadApiTest"]
    assert filled.get(f"/api/v1/alerts/{mine['id']}", headers=AUTH).json() == mine
    notes = filled.get(f"/api/v1/alerts/{mine['id']}/notifications", headers=AUTH).json()
    assert [(n["title"], n["group_key"]) for n in notes["items"]] == [
        ("fired", "ReadApiTest/warning")
    ]
    exported = filled.get("/api/v1/alerts?state=all&format=csv", headers=AUTH)
    assert any(r["rule"] == "ReadApiTest" for r in _csv(exported.text))


# fmt: off
BAD: list[tuple[str, dict[str, Any], int, str]] = [
    (f"/sites/{SITE}/measurements", {"from": "yesterday"}, 422, "from"),
    (f"/sites/{SITE}/measurements", {"to": "2026-03-02T08:00:00"}, 422, "to"),  # no zone
    (f"/sites/{SITE}/measurements", {"from": "2026-03-02T09:00Z", "to": "2026-03-02T08:00Z"},
     422, "to"),
    (f"/sites/{SITE}/measurements", {"points": "0"}, 422, "points"),
    (f"/sites/{SITE}/measurements", {"points": "5001"}, 422, "points"),
    (f"/sites/{SITE}/measurements", {"points": "ten"}, 422, "points"),
    (f"/sites/{SITE}/measurements", {"points": "10", "cursor": "x"}, 422, "cursor"),
    (f"/sites/{SITE}/schedule", {"cursor": "bm90LWEtY3Vyc29y"}, 422, "cursor"),
    (f"/sites/{SITE}/schedule", {"limit": "1001"}, 422, "limit"),
    (f"/sites/{SITE}/events", {"limit": "-1"}, 422, "limit"),
    (f"/sites/{SITE}/events", {"form": "2026-03-02T08:00:00Z"}, 422, "form"),  # a typo
    ("/sites", {"present": "maybe"}, 422, "present"),
    ("/sites", {"format": "xml"}, 422, "format"),
    ("/deliveries", {"site": "abc"}, 422, "site"),
    ("/alerts", {"state": "pending"}, 422, "state"),
    ("/sites/9999", {}, 404, "site_id"),
    ("/sites/abc", {}, 404, "site_id"),
    ("/sites/99999999999/schedule", {}, 404, "site_id"),
    ("/sites/9999/measurements", {}, 404, "site_id"),
    ("/deliveries/123456789", {}, 404, "delivery_id"),
    ("/alerts/0/notifications", {}, 404, "alert_id"),
]
# fmt: on


@pytest.mark.parametrize(("path", "params", "status", "field"), BAD)
def test_bad_input_is_a_4xx_naming_the_field(
    filled: TestClient, path: str, params: dict[str, Any], status: int, field: str
) -> None:
    answer = filled.get("/api/v1" + path, params=params, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["error"] == ("not_found" if status == 404 else "invalid_parameter")


def test_a_cursor_of_one_list_is_refused_by_another(filled: TestClient) -> None:
    """A sites cursor passed to the schedule (or firing alerts' to resolved) is a 422."""
    sites_next = filled.get("/api/v1/sites", params={"limit": 1}, headers=AUTH).json()["next"]
    assert sites_next is not None
    answer = filled.get(f"/api/v1/sites/{SITE}/schedule", params={"cursor": sites_next},
                        headers=AUTH)  # fmt: skip
    assert (answer.status_code, answer.json()["field"]) == (422, "cursor")
