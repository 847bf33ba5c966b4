"""The operator console: server-rendered pages at `/`, behind a session the admin token buys.

- `render`: Jinja2 templates (templates/), times as `<time>`, the pages' security headers;
- `assets`: static/ (CSS, JS, icon) at content-hashed URLs, cached for a year;
- `login`: /login, /logout and the guard of every page (receiver.web.access has the
  session cookie, CSRF and one-time code rules);
- `forms`: every POST's checks (same origin, CSRF token, size, type);
- `pages`: the pages themselves (Fleet `/`, Site `/sites/{id}`, Alerts, Webhooks, Service).

`console_routes(monitor, credential)` gives the routes to add to the monitor's app.
"""

from __future__ import annotations

from datetime import datetime

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.cellect.timestamps import parse_timestamp
from receiver.service import Monitor
from receiver.storage.deliveries import deliveries_since, replay_deliveries
from receiver.storage.engine import session_factory
from receiver.web.access import ConsoleSession
from receiver.web.console.assets import Assets
from receiver.web.console.fleet_table import BadInput
from receiver.web.console.forms import FormRefused, posted_form
from receiver.web.console.login import Handler, Login, guarded
from receiver.web.console.pages import NAV, PAGES, NotFound, Page, webhooks
from receiver.web.console.render import PAGE_HEADERS, Renderer
from receiver.web.operator_api import AdminCredential

LIVE = "live"


def _page_handler(page: Page, monitor: Monitor, renderer: Renderer) -> Handler:
    async def handler(request: Request, session: ConsoleSession) -> Response:
        signed_in = {"active": page.name, "csrf": session.csrf, "signed_in": True}
        fragment = request.query_params.get("fragment")
        if fragment is not None and (fragment != LIVE or page.live is None):
            return HTMLResponse("no such fragment", 404, headers=PAGE_HEADERS)
        try:
            context = {**signed_in, **await page.context(request, monitor)}
        except NotFound as missing:
            context = {**signed_in, "title": "Not found", "message": str(missing)}
            return renderer.page(request, "not_found.html", context, 404)
        except BadInput as bad:
            context = {**signed_in, "title": "Bad request", "message": f"{bad.field}: {bad}"}
            return renderer.page(request, "not_found.html", context, 400)
        if fragment is not None and page.live is not None:
            html = renderer.html(request, page.live, context)
            return HTMLResponse(html, headers=PAGE_HEADERS)
        return renderer.page(request, page.template, {**context, "live": page.live})

    return handler


def _site_jump(renderer: Renderer) -> Handler:
    """`/sites?id=N` (the navigation's site box) → /sites/N."""

    async def handler(request: Request, session: ConsoleSession) -> Response:
        wanted = request.query_params.get("id", "").strip()
        if not wanted.isdigit() or len(wanted) > 12:
            context = {
                "title": "Not a site id",
                "message": "A site id is a whole number, e.g. 3.",
                "csrf": session.csrf,
                "signed_in": True,
            }
            return renderer.page(request, "not_found.html", context, 400)
        return RedirectResponse(f"/sites/{int(wanted)}", 303)

    return handler


def _replay(monitor: Monitor, renderer: Renderer) -> Handler:
    """POST /webhooks/replay (form: since, csrf_token): what `cellect-monitor webhooks
    replay --since` does, from the console — re-apply the stored deliveries received
    since a time; a second replay changes nothing. Answers the Webhooks page with what
    it did (200), or why not (400 naming `since`, 403 without the CSRF token)."""

    async def handler(request: Request, session: ConsoleSession) -> Response:
        signed_in = {"active": "webhooks", "csrf": session.csrf, "signed_in": True}
        try:
            fields = await posted_form(request, session.csrf)
        except FormRefused as refused:
            context = {**signed_in, "title": "Refused", "message": refused.message}
            return renderer.page(request, "not_found.html", context, refused.status)
        since = parse_timestamp(fields.get("since", "").strip())
        if since is None:
            context = {
                **signed_in,
                "title": "Bad request",
                "message": "since: an ISO-8601 time with a zone, e.g. 2026-03-02T08:00:00Z",
            }
            return renderer.page(request, "not_found.html", context, 400)
        count, changes = await to_thread.run_sync(_replay_since, monitor, since)
        shown = since.strftime("%Y-%m-%d %H:%M:%S UTC")
        message = f"Replayed {count} deliveries received since {shown}: {changes} status changes."
        shown_page = await webhooks(request, monitor)
        context = {
            **signed_in,
            **shown_page,
            "message": message,
            "live_url": "/webhooks?fragment=live",
        }
        return renderer.page(request, "webhooks.html", {**context, "live": "webhooks_live.html"})

    return handler


def _replay_since(monitor: Monitor, since: datetime) -> tuple[int, int]:
    with session_factory(monitor.database)() as session:
        count = len(deliveries_since(session=session, since=since))
        changes = replay_deliveries(session=session, since=since, now=monitor.clock.now())
        session.commit()
    return count, changes


def console_routes(monitor: Monitor, credential: AdminCredential) -> list[BaseRoute]:
    assets = Assets()
    renderer = Renderer(assets, NAV)
    login = Login(credential, renderer)
    routes: list[BaseRoute] = [
        Route("/login", login.form, methods=["GET"]),
        Route("/login", login.submit, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/sites", guarded(credential, _site_jump(renderer)), methods=["GET"]),
        Route(
            "/webhooks/replay", guarded(credential, _replay(monitor, renderer)), methods=["POST"]
        ),
        *assets.routes(),
    ]
    for page in PAGES:
        endpoint = guarded(credential, _page_handler(page, monitor, renderer))
        routes.append(Route(page.path, endpoint, methods=["GET"]))
    return routes
