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

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.service import Monitor
from receiver.web.access import ConsoleSession
from receiver.web.console.assets import Assets
from receiver.web.console.login import Handler, Login, guarded
from receiver.web.console.pages import NAV, PAGES, NotFound, Page
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


def console_routes(monitor: Monitor, credential: AdminCredential) -> list[BaseRoute]:
    assets = Assets()
    renderer = Renderer(assets, NAV)
    login = Login(credential, renderer)
    routes: list[BaseRoute] = [
        Route("/login", login.form, methods=["GET"]),
        Route("/login", login.submit, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/sites", guarded(credential, _site_jump(renderer)), methods=["GET"]),
        *assets.routes(),
    ]
    for page in PAGES:
        endpoint = guarded(credential, _page_handler(page, monitor, renderer))
        routes.append(Route(page.path, endpoint, methods=["GET"]))
    return routes
