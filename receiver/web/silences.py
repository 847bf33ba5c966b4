"""The silences over HTTP (mounted by the app behind the operator API's door).

  GET    /api/silences         the silences in force: {"silences": [...]}
  POST   /api/silences         {"matchers": {...}, "duration": "2h" | "ends_at": ISO,
                                "comment": "...", "created_by": "..."} → 201 + the silence
  DELETE /api/silences/{id}    expire it now → 204, or 404

Bad input gets 422 with {"error", "message", "field"}, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable

from anyio import to_thread
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.alerting.silences import (
    InvalidSilence,
    SilenceIn,
    SilenceService,
    parse_silence_id,
    silence_json,
)
from receiver.cellect.clock import Clock


def _invalid(message: str, field: str) -> JSONResponse:
    body = {"error": "invalid_silence", "message": message, "field": field}
    return JSONResponse(body, status_code=422)


def _first_error(exc: ValidationError) -> JSONResponse:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error.get("loc", ())) or "body"
    return _invalid(str(error.get("msg", "invalid")), field)


def silence_routes(
    store: Engine, clock: Clock, on_change: Callable[[], None] | None = None
) -> list[Route]:
    """The /api/silences routes, for the app to mount (behind its admin-token guard,
    which also caps the body and admits only JSON).

    `on_change` is called once a silence is made or expired (committed): the alert
    engine skips flushes it thinks idle, and a silence is a change it cannot see.
    """
    service = SilenceService(store, clock)

    def changed() -> None:
        if on_change is not None:
            on_change()

    async def list_silences(_request: Request) -> JSONResponse:
        found = await to_thread.run_sync(service.active)
        return JSONResponse({"silences": [silence_json(s) for s in found]})

    async def create(request: Request) -> JSONResponse:
        try:
            spec = SilenceIn.model_validate_json(await request.body())
        except ValidationError as exc:
            return _first_error(exc)
        try:
            silence = await to_thread.run_sync(service.create, spec)
        except InvalidSilence as exc:
            return _invalid(str(exc), exc.field)
        changed()
        return JSONResponse(silence_json(silence), status_code=201)

    async def expire(request: Request) -> Response:
        raw = request.path_params["silence_id"]
        try:
            silence_id = parse_silence_id(raw)
        except ValueError as exc:
            return _invalid(str(exc), "id")
        if not await to_thread.run_sync(service.expire, silence_id):
            body = {"error": "not_found", "message": f"no active silence {raw}", "field": "id"}
            return JSONResponse(body, status_code=404)
        changed()
        return Response(status_code=204)

    return [
        Route("/api/silences", list_silences, methods=["GET"]),
        Route("/api/silences", create, methods=["POST"]),
        Route("/api/silences/{silence_id}", expire, methods=["DELETE"]),
    ]
