"""Rendering the console's pages: Jinja2 templates (autoescaped), times, security headers.

Every page response carries a strict Content-Security-Policy (scripts, styles and images
from the console's own origin only, no inline script, no framing), `no-store` caching
(pages show live state and a CSRF token) and `Referrer-Policy: same-origin` (no URL of
the console goes to another site).

Times: `{{ value|time }}` renders `<time datetime="…Z" title="… UTC">… UTC</time>`;
console.js rewrites the text in the browser's own time zone and keeps UTC in the title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from receiver import __version__
from receiver.web.console.assets import ICON, Assets

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on a
    # form POST, which the same-origin check must refuse.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class NavItem:
    """One entry of the navigation: `name` is what a page names as its `active` entry."""

    name: str
    title: str
    path: str


def time_tag(value: datetime | None, empty: str = "never") -> Markup:
    """`<time>` for an aware datetime (UTC in the text and title), `empty` for None."""
    if value is None:
        return Markup('<span class="none">{}</span>').format(empty)
    utc = value.astimezone(UTC)
    shown = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"), shown, shown
    )


class Renderer:
    """The templates of receiver/web/console/templates, with the console's globals."""

    def __init__(self, assets: Assets, nav: Sequence[NavItem]) -> None:
        self.assets, self.nav = assets, tuple(nav)
        self.env = Environment(
            loader=PackageLoader("receiver.web.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["time"] = time_tag
        self.env.globals["version"] = __version__
        self.env.globals["icon"] = ICON

    def html(self, request: Request, template: str, context: Mapping[str, Any]) -> str:
        values = {
            "request": request,
            "static": self.assets.path,
            "nav": self.nav,
            "active": None,
            "csrf": None,
            "signed_in": False,
            "message": None,
            **context,
        }
        return self.env.get_template(template).render(values)

    def page(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        status: int = 200,
    ) -> HTMLResponse:
        body = self.html(request, template, context)
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)
