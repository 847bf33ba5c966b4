"""The console's pages: what each shows, as a template and a context function.

A `Page` is a path, a template (extending base.html), the navigation entry it lights
up, and an async `context(request, monitor)` giving the template its values. With a
`live` fragment template, the page's `?fragment=live` answers that fragment alone, and
the page wraps it in a live region (`data-live`, see static/console.js) that fetches it
every few seconds while the tab is visible and swaps it in place.

Fleet, Site, Alerts and Webhooks are placeholders (docs/console.md): Fleet lists the
sites the monitor knows, Site names one, Webhooks shows the last accepted delivery.
Service is real: the monitor's health, as /readyz judges it, and the service's view.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from receiver.service import Monitor
from receiver.web.console.render import NavItem
from receiver.web.health import readiness

Context = Callable[[Request, Monitor], Awaitable[dict[str, Any]]]
NAV = (
    NavItem("fleet", "Fleet", "/"),
    NavItem("alerts", "Alerts", "/alerts"),
    NavItem("webhooks", "Webhooks", "/webhooks"),
    NavItem("service", "Service", "/service"),
)


class NotFound(Exception):
    """What a page was asked about does not exist (a 404 page saying what)."""


@dataclass(frozen=True)
class Page:
    name: str  # the navigation entry it lights up
    path: str
    template: str
    context: Context
    live: str | None = None  # the fragment template its live region refreshes


async def fleet(_request: Request, monitor: Monitor) -> dict[str, Any]:
    sites = sorted(monitor.fleet.view().sites, key=lambda s: s.site_id)
    return {"title": "Fleet", "sites": sites, "in_portfolio": len(monitor.fleet.site_ids)}


async def site(request: Request, monitor: Monitor) -> dict[str, Any]:
    site_id: int = request.path_params["site_id"]
    found = [s for s in monitor.fleet.view().sites if s.site_id == site_id]
    if not found:
        raise NotFound(f"The monitor knows no site {site_id}.")
    return {"title": found[0].name, "site": found[0]}


async def alerts(_request: Request, _monitor: Monitor) -> dict[str, Any]:
    return {"title": "Alerts"}


async def webhooks(_request: Request, monitor: Monitor) -> dict[str, Any]:
    return {"title": "Webhooks", "service": monitor.fleet.service.view()}


async def service(_request: Request, monitor: Monitor) -> dict[str, Any]:
    return {
        "title": "Service",
        "health": await readiness(monitor),
        "service": monitor.fleet.service.view(),
        "now": monitor.clock.now(),
        "sites_known": len(monitor.fleet.known_site_ids),
    }


PAGES = (
    Page("fleet", "/", "fleet.html", fleet, live="fleet_live.html"),
    Page("fleet", "/sites/{site_id:int}", "site.html", site),
    Page("alerts", "/alerts", "alerts.html", alerts),
    Page("webhooks", "/webhooks", "webhooks.html", webhooks, live="webhooks_live.html"),
    Page("service", "/service", "service.html", service, live="service_live.html"),
)
