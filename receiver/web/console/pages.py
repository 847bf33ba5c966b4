"""The console's pages: what each shows, as a template and a context function.

A `Page` is a path, a template (extending base.html), the navigation entry it lights
up, and an async `context(request, monitor)` giving the template its values. With a
`live` fragment template, the page's `?fragment=live` answers that fragment alone (with
the same query, so a live region refreshes only what the page shows), and the page
wraps it in a live region (`data-live`, see static/console.js).

- Fleet (`/`): the live picture of every site (receiver.web.console.fleet_table),
  filtered, sorted and paged on the server;
- Site (`/sites/{id}`): the stored history of one site over a chosen range (chart,
  schedule, events, deliveries) and its alerts and silences;
- Alerts: firing and recently resolved alerts with their notifications; silences;
- Webhooks: stored deliveries, one's raw body, the outcome counters, replay;
- Service: the monitor's health as /readyz judges it, the service's state, and the live
  replicas with what each holds (receiver.web.replicas).

Database reads run in a worker thread on a session of their own (`_read`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from anyio import to_thread
from sqlmodel import Session
from starlette.requests import Request

from receiver.alerting.grouping import group_key
from receiver.alerting.silences import SilenceService
from receiver.coordination.buckets import BUCKETS
from receiver.service import Monitor
from receiver.storage.alert_tables import Silence
from receiver.storage.alerts import silence_matches
from receiver.storage.engine import session_factory
from receiver.storage.outbox import pending_count
from receiver.storage.reads import ReadError
from receiver.storage.reads.alerts import AlertView, alert_page, notification_page
from receiver.storage.reads.deliveries import delivery, delivery_page
from receiver.storage.reads.events import event_page
from receiver.storage.reads.measurements import downsampled_measurements
from receiver.storage.reads.schedule import failures_by_site, schedule_page
from receiver.storage.reads.sites import site_known, site_summary
from receiver.web.console.charts import STATUS_CLASS, STATUS_NAME, site_chart
from receiver.web.console.fleet_table import BadInput, FleetQuery, fleet_table
from receiver.web.console.render import NavItem
from receiver.web.health import readiness
from receiver.web.replicas import read_replicas

T = TypeVar("T")
Context = Callable[[Request, Monitor], Awaitable[dict[str, Any]]]
NAV = (
    NavItem("fleet", "Fleet", "/"),
    NavItem("alerts", "Alerts", "/alerts"),
    NavItem("webhooks", "Webhooks", "/webhooks"),
    NavItem("service", "Service", "/service"),
)
RANGES = {
    "6h": timedelta(hours=6),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
CHART_POINTS = 400
SITE_LIST_LIMIT = 1000  # schedule entries and events drawn on one chart
DELIVERIES_SHOWN = 50
DAY = timedelta(days=1)


class NotFound(Exception):
    """What a page was asked about does not exist (a 404 page saying what)."""


@dataclass(frozen=True)
class Page:
    name: str  # the navigation entry it lights up
    path: str
    template: str
    context: Context
    live: str | None = None  # the fragment template its live region refreshes


async def _read(monitor: Monitor, read: Callable[[Session], T]) -> T:
    """`read` on a session of its own, in a worker thread (the event loop goes on)."""

    def run() -> T:
        with session_factory(monitor.database)() as session:
            return read(session)

    return await to_thread.run_sync(run)


def _live_url(request: Request) -> str:
    """The page's own URL with `fragment=live`: the region refreshes what the page shows."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "fragment"]
    query.append(("fragment", "live"))
    return request.url.path + "?" + "&".join(f"{k}={_quote(v)}" for k, v in query)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _site_alerts(monitor: Monitor) -> dict[int, tuple[str, ...]]:
    """The rules firing per site (alerts labelled with a site_id)."""
    found: dict[int, list[str]] = {}
    for a in monitor.alert_engine.firing():
        raw = a.labels.get("site_id", "")
        if raw.isdigit():
            found.setdefault(int(raw), []).append(a.rule)
    return {site: tuple(sorted(rules)) for site, rules in found.items()}


async def fleet(request: Request, monitor: Monitor) -> dict[str, Any]:
    query = FleetQuery.parse(request.query_params)
    now = monitor.clock.now()
    table = fleet_table(
        monitor.fleet.rows(),
        query,
        now=now,
        stale_after_s=monitor.settings.stale_after_s,
        alerts=_site_alerts(monitor),
    )
    ids = [r.site.site_id for r in table.rows]
    failures = await _read(
        monitor, lambda s: failures_by_site(session=s, site_ids=ids, since=now - DAY)
    )
    rows = [
        replace(
            r,
            horizon_end=monitor.fleet.horizon_end(r.site.site_id),
            failures_24h=failures.get(r.site.site_id, 0),
        )
        for r in table.rows
    ]
    return {
        "title": "Fleet",
        "table": replace(table, rows=rows),
        "query": query,
        "now": now,
        "stale_after_s": monitor.settings.stale_after_s,
        "live_url": _live_url(request),
    }


def _site_range(request: Request, monitor: Monitor) -> str:
    for name in request.query_params:
        if name not in ("range", "fragment"):
            raise BadInput(name, f"unknown parameter {name!r}")
    chosen = request.query_params.get("range", "24h")
    if chosen not in RANGES:
        raise BadInput("range", f"'range' must be one of {', '.join(RANGES)}")
    if RANGES[chosen] > timedelta(days=monitor.settings.retention_days):
        raise BadInput("range", "'range' reaches past the retention (CELLECT_RETENTION_DAYS)")
    return chosen


async def site(request: Request, monitor: Monitor) -> dict[str, Any]:
    site_id: int = request.path_params["site_id"]
    chosen = _site_range(request, monitor)
    now = monitor.clock.now()
    start = now - RANGES[chosen]
    # The chart reaches ahead too, to show the planned schedule: a quarter of the range,
    # at most the vendor's 48 hours.
    end = now + min(RANGES[chosen] / 4, timedelta(hours=48))

    def read(s: Session) -> dict[str, Any] | None:
        if not site_known(session=s, site_id=site_id):
            return None
        summary = site_summary(session=s, site_id=site_id, now=now)
        down = downsampled_measurements(
            session=s, site_id=site_id, start=start, end=now, points=CHART_POINTS
        )
        entries = schedule_page(
            session=s, site_id=site_id, start=start, end=end, limit=SITE_LIST_LIMIT
        )
        events = event_page(session=s, site_id=site_id, start=start, end=end, limit=SITE_LIST_LIMIT)
        deliveries = delivery_page(session=s, site_id=site_id, limit=10)
        firing = alert_page(session=s, state="firing", limit=1000).items
        resolved = alert_page(session=s, state="resolved", limit=200).items
        mine = str(site_id)
        return {
            "summary": summary,
            "buckets": down.buckets,
            "width_s": down.width_s,
            "entries": entries,
            "events": events,
            "deliveries": deliveries.items,
            "alerts": [a for a in firing + resolved if a.labels.get("site_id") == mine][:50],
        }

    found = await _read(monitor, read)
    live = next((r for r in monitor.fleet.rows() if r.site_id == site_id), None)
    if found is None and live is None:
        raise NotFound(f"The monitor knows no site {site_id}.")
    found = found or {
        "summary": None,
        "buckets": [],
        "width_s": 0,
        "entries": None,
        "events": None,
        "deliveries": [],
        "alerts": [],
    }
    summary = found["summary"]
    rated = max(summary.rated_charge_kw, summary.rated_discharge_kw) if summary else 0.0
    entries = found["entries"].items if found["entries"] else []
    events = found["events"].items if found["events"] else []
    silences = await to_thread.run_sync(SilenceService(monitor.database, monitor.clock).active)
    name = summary.name if summary else (live.name if live else f"site {site_id}")
    return {
        "title": name,
        "site_id": site_id,
        "summary": summary,
        "site_live": live,
        "range": chosen,
        "ranges": [
            r for r in RANGES if RANGES[r] <= timedelta(days=monitor.settings.retention_days)
        ],
        "start": start,
        "end": end,
        "now": now,
        "chart": site_chart(
            start=start,
            end=end,
            buckets=found["buckets"],
            entries=entries,
            events=events,
            rated_kw=rated,
        ),
        "points": len(found["buckets"]),
        "width_s": found["width_s"],
        "entries": entries,
        "entries_cut": bool(found["entries"] and found["entries"].next),
        "events": events,
        "deliveries": found["deliveries"],
        "alerts": found["alerts"],
        "silences": [s for s in silences if s.matchers.get("site_id") == str(site_id)],
        "status_name": STATUS_NAME,
        "status_class": STATUS_CLASS,
        "live_url": _live_url(request),
    }


def _silenced(alert: AlertView, silences: list[Silence]) -> bool:
    """Whether a silence in force mutes `alert` (`rule` and `severity` match its own)."""
    labels = {**alert.labels, "rule": alert.rule, "severity": alert.severity}
    return any(silence_matches(s, labels) for s in silences)


async def alerts(request: Request, monitor: Monitor) -> dict[str, Any]:
    for name in request.query_params:
        if name != "fragment":
            raise BadInput(name, f"unknown parameter {name!r}")

    def read(s: Session) -> tuple[list[AlertView], list[AlertView], dict[int, list[Any]]]:
        firing = alert_page(session=s, state="firing", limit=200).items
        resolved = alert_page(session=s, state="resolved", limit=50).items
        notes = {
            a.id: notification_page(
                session=s, group_key=group_key(a.rule, a.severity), since=a.starts_at, limit=3
            ).items
            for a in (firing[:50] + resolved[:20])
        }
        return firing, resolved, notes

    firing, resolved, notes = await _read(monitor, read)
    silences = await to_thread.run_sync(SilenceService(monitor.database, monitor.clock).active)
    return {
        "title": "Alerts",
        "firing": firing,
        "resolved": resolved,
        "notes": notes,
        "silences": silences,
        "silenced": {a.id for a in firing if _silenced(a, silences)},
        "matchers": {a.id: json.dumps(_matchers(a), sort_keys=True) for a in firing + resolved},
        "live_url": _live_url(request),
    }


def _matchers(alert: AlertView) -> dict[str, str]:
    """What a silence made from `alert` matches: its rule and identifying labels."""
    kept = {k: v for k, v in alert.labels.items() if k not in ("site_name", "severity")}
    return {"rule": alert.rule, **kept} if "rule" not in kept else kept


def webhook_counts(monitor: Monitor) -> dict[str, float]:
    """The webhook requests counted since the start, by outcome (the metrics' counter:
    refused and duplicate deliveries are counted there, never stored)."""
    counts: dict[str, float] = {}
    for metric in monitor.metrics.webhook_requests.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["outcome"]] = sample.value
    return counts


async def webhooks(request: Request, monitor: Monitor) -> dict[str, Any]:
    for name in request.query_params:
        if name not in ("after", "delivery", "fragment"):
            raise BadInput(name, f"unknown parameter {name!r}")
    after = request.query_params.get("after")
    raw = request.query_params.get("delivery")
    wanted = None
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise BadInput("delivery", "'delivery' must be a delivery id (a whole number)")
        wanted = int(raw)

    def read(s: Session) -> tuple[Any, Any]:
        page = delivery_page(session=s, after=after, limit=DELIVERIES_SHOWN)
        one = delivery(session=s, delivery_id=wanted) if wanted is not None else None
        return page, one

    try:
        page, one = await _read(monitor, read)
    except ReadError as exc:
        raise BadInput("after", str(exc)) from None
    if wanted is not None and one is None:
        raise NotFound(f"No delivery {wanted} is stored (or it was pruned).")
    now = monitor.clock.now()
    return {
        "title": "Webhooks",
        "service": monitor.fleet.service.view(),
        "deliveries": page.items,
        "next": page.next,
        "first_page": after is None,
        "delivery": one,
        "counts": webhook_counts(monitor),
        "replay_since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "live_url": _live_url(request),
    }


async def service(_request: Request, monitor: Monitor) -> dict[str, Any]:
    client = monitor.client
    return {
        "title": "Service",
        "health": await readiness(monitor),
        "service": monitor.fleet.service.view(),
        "now": monitor.clock.now(),
        "sites_known": len(monitor.fleet.known_site_ids),
        "access_token_expires_at": client.access_token_expires_at if client else None,
        "outbox_pending": await _read(monitor, lambda s: pending_count(session=s)),
        "database_backend": monitor.database.dialect.name,
        "firing": len(monitor.alert_engine.firing()),
        "replicas": await read_replicas(monitor),
        "bucket_count": BUCKETS,
    }


PAGES = (
    Page("fleet", "/", "fleet.html", fleet, live="fleet_live.html"),
    Page("fleet", "/sites/{site_id:int}", "site.html", site, live="site_live.html"),
    Page("alerts", "/alerts", "alerts.html", alerts, live="alerts_live.html"),
    Page("webhooks", "/webhooks", "webhooks.html", webhooks, live="webhooks_live.html"),
    Page("service", "/service", "service.html", service, live="service_live.html"),
)
