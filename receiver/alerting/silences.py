"""Silences: mute alerts matching labels for a while, from the CLI or the HTTP API.

A silence has matchers (`label → value`, all must hold; `rule` and `severity` match
the alert's rule and severity, any other name one of its labels, e.g. `site_id`), a
start, an end, who made it and why. The engine skips muted alerts; an expired silence
stops muting at once (the alert is then told like a new one, if never told before).

HTTP (mounted by the app; `silence_routes(store, clock, on_change=engine.mark_dirty)`, so
that the engine's next flush applies a new or expired silence at once):
  GET    /api/silences         the silences in force: {"silences": [...]}
  POST   /api/silences         {"matchers": {...}, "duration": "2h" | "ends_at": ISO,
                                "comment": "...", "created_by": "..."} → 201 + the silence
  DELETE /api/silences/{id}    expire it now → 204, or 404
Bad input gets 422 with {"error", "message", "field"}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.storage import repository
from receiver.storage.alert_tables import Silence
from receiver.storage.engine import session_factory

if TYPE_CHECKING:
    from receiver.cellect.clock import Clock

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1h30m` → a positive timedelta (ValueError otherwise)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError("a duration like 90s, 30m, 2h, 1d or 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return timedelta(seconds=seconds)


class SilenceIn(BaseModel):
    """A silence as the API and the CLI accept it."""

    matchers: dict[str, str] = Field(min_length=1)
    duration: str | None = None
    ends_at: datetime | None = None
    comment: str = Field(min_length=1, max_length=1000)
    created_by: str = Field("api", min_length=1, max_length=200)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a timezone (e.g. Z or +00:00)")
        return value

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        if self.duration is not None:
            return now, now + parse_duration(self.duration)
        if self.ends_at is None:
            raise ValueError("give duration or ends_at")
        if self.ends_at <= now:
            raise ValueError("ends_at is in the past")
        return now, self.ends_at


def silence_json(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": silence.matchers,
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
    }


class SilenceService:
    """The silence operations on a database, shared by the HTTP API and the CLI (blocking)."""

    def __init__(self, store: Engine, clock: Clock) -> None:
        self._sessions, self.clock = session_factory(store), clock

    def create(self, spec: SilenceIn) -> Silence:
        starts, ends = spec.window(self.clock.now())
        with self._sessions() as session, session.begin():
            return repository.create_silence(
                session=session, matchers=spec.matchers, starts_at=starts, ends_at=ends,
                created_by=spec.created_by, comment=spec.comment,
            )  # fmt: skip

    def active(self) -> list[Silence]:
        with self._sessions() as session:
            return repository.active_silences(session=session, now=self.clock.now())

    def expire(self, silence_id: int) -> bool:
        with self._sessions() as session, session.begin():
            return repository.expire_silence(
                session=session, silence_id=silence_id, now=self.clock.now()
            )


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
    """The /api/silences routes, for the app to mount.

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
        if spec.duration is None and spec.ends_at is None:
            return _invalid("give duration or ends_at", "duration")
        try:
            silence = await to_thread.run_sync(service.create, spec)
        except ValueError as exc:
            return _invalid(str(exc), "ends_at")
        changed()
        return JSONResponse(silence_json(silence), status_code=201)

    async def expire(request: Request) -> Response:
        raw = request.path_params["silence_id"]
        if not raw.isdigit():
            return _invalid("must be a silence id (an integer)", "id")
        if not await to_thread.run_sync(service.expire, int(raw)):
            body = {"error": "not_found", "message": f"no active silence {raw}", "field": "id"}
            return JSONResponse(body, status_code=404)
        changed()
        return Response(status_code=204)

    return [
        Route("/api/silences", list_silences, methods=["GET"]),
        Route("/api/silences", create, methods=["POST"]),
        Route("/api/silences/{silence_id}", expire, methods=["DELETE"]),
    ]
