"""The console's static files (CSS, JS, icon), shipped in the package, at versioned URLs.

Each file is served at `/static/<first 12 hex of its SHA-256>/<name>` with
`Cache-Control: public, max-age=31536000, immutable`: a browser keeps it for a year and
never asks again, and a changed file has a new URL, so a new release is picked up at once.
A URL with another hash (a page of an older release) or an unknown name is a 404. Nothing
comes from a CDN: the console works offline. `/favicon.ico`, which browsers ask for by
themselves where a page names no icon (a live fragment opened on its own), redirects to
the icon's versioned URL.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

STATIC_PREFIX = "/static"
ICON = "favicon.svg"
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    name: str
    digest: str
    body: bytes
    media_type: str


class Assets:
    """The files of receiver/web/console/static, read and hashed once."""

    def __init__(self, package: str = "receiver.web.console") -> None:
        folder = resources.files(package).joinpath("static")
        self._assets: dict[str, Asset] = {}
        for entry in folder.iterdir():
            if not entry.is_file() or entry.name.startswith("."):
                continue
            body = entry.read_bytes()
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            media_type = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
            self._assets[entry.name] = Asset(
                entry.name,
                hashlib.sha256(body).hexdigest()[:12],
                body,
                media_type or "application/octet-stream",
            )

    def path(self, name: str) -> str:
        """The versioned path of asset `name` (KeyError for a file not shipped)."""
        asset = self._assets[name]
        return f"{STATIC_PREFIX}/{asset.digest}/{asset.name}"

    async def serve(self, request: Request) -> Response:
        asset = self._assets.get(request.path_params["name"])
        if asset is None or asset.digest != request.path_params["digest"]:
            return PlainTextResponse("no such file", 404, headers={"Cache-Control": "no-store"})
        etag = f'"{asset.digest}"'
        headers = {
            "Cache-Control": IMMUTABLE,
            "ETag": etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    async def favicon(self, _request: Request) -> Response:
        return RedirectResponse(self.path(ICON), 301, headers={"Cache-Control": "max-age=86400"})

    def routes(self) -> list[BaseRoute]:
        return [
            Route(STATIC_PREFIX + "/{digest}/{name}", self.serve, methods=["GET"]),
            Route("/favicon.ico", self.favicon, methods=["GET"]),
        ]
