"""The emulated Cellect Partner API as a Starlette app (no lifespan: it also works through
httpx.ASGITransport); `create_emulator_app(emulator)` builds it around an `Emulator`.

Routes (resources with and without the `/v1` prefix, docs/decisions.md):
`POST /v1/access-token`; `POST|GET|DELETE /v1/resources/sites/{siteId}/time-series`;
`GET /v1/resources/sites/{siteId}/master-data`; `GET /v1/resources/sites/master-data`;
`GET /v1/resources/sites/{siteId}/events`; the control API under `/_emulator`
(receiver.emulator.control). Error bodies are `{"statusCode", "errorCode", "message"}`.

Decisions where the guide is silent:
- Authorization: `Bearer <token>` or the bare token. Access token endpoint: no header →
  401 30072; a header that is present but empty (or `Bearer` alone) → 400 30069 Refresh
  Token Not Found; an unknown, expired or revoked refresh token → 401 30072.
- Resources without a valid access token (missing, malformed, expired on the emulated
  clock, or expired early by the `expire_tokens` fault) → 401 with errorCode 0: the
  catalogue has no access-token code, and 30072 would tell a client its *refresh*
  token is bad when it only needs a new access token. A `WWW-Authenticate` header says so.
- Order of checks: access token, siteId (blank 30007, not a positive integer 30008),
  symbol (missing 30017, unknown 30018, a symbol of another operation 30019), site
  (unknown 30085, another partner's 30004), then the body or query.
- Master data of one site of another partner is 30087 Partner Account Site Not Found
  (master data is looked up within the partner's portfolio); the other resources answer
  30004 Invalid Site Ownership. `symbol=SiteInformation` without a site is 30007 (the
  guide: siteId is "required if Symbol is SiteInformation"). A partner without any
  site asking for PortfolioOverview gets 30086.
- Store: a body that is not JSON is treated as no data (30009, validation's rule).
  Every violation is listed in `errors` ([{"code","field","message"}]); the first is
  the answer's errorCode. `partnerAccountId` naming no partner account is 30021,
  another partner's account 30004. Success: 200 `{"postId", "entries"}`.
- Delete: `DELETE …/time-series?startDate&endDate` (symbol optional, EssPowerAC if
  given) deletes the not-started entries overlapping the window: 200 `{"deleted": n}`;
  nothing to delete is 30005 Time Series Status Not Found; start ≥ end is 30089.
- Unknown routes and methods answer JSON too (errorCode 0).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from receiver.cellect import errors
from receiver.emulator.cloud import Emulator
from receiver.emulator.control import control_routes
from receiver.emulator.faults import FaultMiddleware
from receiver.emulator.resources import Resources


class _Segment(Convertor[str]):
    """A path segment that may be empty, so `sites//time-series` reaches 30007."""

    regex = "[^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", _Segment())


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.CellectApiError)
    unauthorized = exc.http_status == 401
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if unauthorized else None
    return JSONResponse(exc.body(), status_code=exc.http_status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body = {"statusCode": exc.status_code, "errorCode": 0, "message": exc.detail}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _site_required(request: Request) -> Response:
    raise errors.SiteIdRequired("siteId is required")


def _api_routes(api: Resources) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for prefix in ("/v1", ""):
        sites = f"{prefix}/resources/sites"
        routes += [
            Route(f"{prefix}/access-token", api.access_token, methods=["POST"]),
            Route(f"{sites}/master-data", api.portfolio, methods=["GET"]),
            Route(f"{sites}/{{site_id:segment}}/master-data", api.site_master, methods=["GET"]),
            Route(f"{sites}/{{site_id:segment}}/events", api.events, methods=["GET"]),
            Route(f"{sites}/{{site_id:segment}}/time-series", api.store, methods=["POST"]),
            Route(f"{sites}/{{site_id:segment}}/time-series", api.read, methods=["GET"]),
            Route(f"{sites}/{{site_id:segment}}/time-series", api.delete, methods=["DELETE"]),
            Route(f"{sites}/time-series", _site_required, methods=["GET", "POST", "DELETE"]),
            Route(f"{sites}/events", _site_required, methods=["GET"]),
        ]
    return routes


def create_emulator_app(emulator: Emulator) -> Starlette:
    """The Partner API and the `/_emulator` control API around one emulator."""
    routes = [
        *_api_routes(Resources(emulator)),
        Mount("/_emulator", routes=control_routes(emulator)),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(FaultMiddleware, faults=emulator.faults)],
        exception_handlers={errors.CellectApiError: _api_error, HTTPException: _http_error},
    )
    app.state.emulator = emulator
    return app
