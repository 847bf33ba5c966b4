"""The read API under /api/v1/ (mounted by the app behind the operator API's door):

  GET /api/v1/sites[?present=true|false]           every site, its latest measurement, availability
  GET /api/v1/sites/{id}                           one site
  GET /api/v1/sites/{id}/measurements?from=&to=[&points=N]
                                                   raw rows, or at most N buckets (mean/min/max)
  GET /api/v1/sites/{id}/schedule[?from=&to=]      entries starting in the window, every
                                                   generation, with history: planned vs executed
  GET /api/v1/sites/{id}/events[?from=&to=]        availability events overlapping the window
  GET /api/v1/deliveries[?site=ID]                 raw webhook deliveries, newest first
  GET /api/v1/deliveries/{id}                      one delivery with its raw body
  GET /api/v1/alerts[?state=firing|resolved|all]   alerts, most recent first
  GET /api/v1/alerts/{id}                          one alert
  GET /api/v1/alerts/{id}/notifications            messages sent about its group since it started
  GET /api/v1/energy?from=&to=[&site=ID]           delivered against planned per site and entry

Lists answer `{"items": [...], "next": cursor | null}`; `?cursor=` (what `next` said)
fetches the following page, `?limit=` sets its size (1…1000, default 100). Every list
takes `?format=csv`: all items from the cursor on, streamed as text/csv with a filename.
Bad input — a malformed time, `to` before `from`, `points` or `limit` out of range, a
cursor that is not one of this list, an unknown parameter — is a 422 naming the field
(`{"error", "message", "field"}`); an unknown site, delivery or alert a 404. Reads run
in worker threads, each on a session of its own. docs/api.md has examples.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from anyio import to_thread
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from receiver.alerting.grouping import group_key
from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import parse_timestamp
from receiver.storage.engine import session_factory
from receiver.storage.reads import DEFAULT_LIMIT, MAX_LIMIT, Page, ReadError
from receiver.storage.reads.alerts import ALERT_FILTERS, alert, alert_page, notification_page
from receiver.storage.reads.deliveries import delivery, delivery_page
from receiver.storage.reads.energy import energy_report
from receiver.storage.reads.events import event_page
from receiver.storage.reads.measurements import (
    MAX_POINTS,
    downsampled_measurements,
    measurement_page,
)
from receiver.storage.reads.schedule import schedule_page
from receiver.storage.reads.sites import site_known, site_page, site_summary
from receiver.web import read_rows as rows
from receiver.web.read_rows import (
    CsvShape,
    energy_json,
    entry_json,
    event_json,
    item_json,
    site_json,
)

T = TypeVar("T")
PREFIX = "/api/v1"
# Ids are stored as 32-bit (sites, alerts) or 64-bit (deliveries) integers.
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1
# A measurements window without `from` covers the day before `to` (default: now).
DEFAULT_SPAN = timedelta(days=1)
# A CSV export ends after this many pages of MAX_LIMIT items (ten million rows).
MAX_EXPORT_PAGES = 10_000
_PAGING = frozenset({"cursor", "limit", "format"})


class BadParameter(Exception):
    """A request parameter is wrong: 422 naming it (or `status`, e.g. 404 for an unknown id)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.status = field, status


def refusal(exc: BadParameter | ReadError) -> JSONResponse:
    status = exc.status if isinstance(exc, BadParameter) else 422
    error = "not_found" if status == 404 else "invalid_parameter"
    return JSONResponse({"error": error, "message": str(exc), "field": exc.field}, status)


@dataclass(frozen=True)
class Query:
    """The query string of one request, read with the checks every route shares."""

    values: dict[str, str]

    @classmethod
    def of(cls, request: Request, allowed: Collection[str]) -> Query:
        """The query parameters; an unknown or repeated one is refused (a typo would
        otherwise silently widen the read)."""
        for name in request.query_params:
            if name not in allowed and name not in _PAGING:
                raise BadParameter(name, f"unknown parameter {name!r}")
            if len(request.query_params.getlist(name)) > 1:
                raise BadParameter(name, f"{name!r} is given more than once")
        return cls(dict(request.query_params))

    def time(self, name: str) -> datetime | None:
        raw = self.values.get(name)
        if raw is None:
            return None
        moment = parse_timestamp(raw)
        if moment is None:
            raise BadParameter(name, f"{name!r} must be an ISO-8601 time with a zone, e.g. "
                                     "2026-03-02T08:00:00Z")  # fmt: skip
        return moment

    def integer(self, name: str, low: int, high: int) -> int | None:
        raw = self.values.get(name)
        if raw is None:
            return None
        if not raw.isascii() or not raw.isdigit() or len(raw) > 20 or not low <= int(raw) <= high:
            raise BadParameter(name, f"{name!r} must be a whole number from {low} to {high}")
        return int(raw)

    def choice(self, name: str, choices: Collection[str], default: str) -> str:
        raw = self.values.get(name, default)
        if raw not in choices:
            raise BadParameter(name, f"{name!r} must be one of {', '.join(choices)}")
        return raw

    @property
    def cursor(self) -> str | None:
        return self.values.get("cursor")

    @property
    def limit(self) -> int:
        return self.integer("limit", 1, MAX_LIMIT) or DEFAULT_LIMIT

    @property
    def csv(self) -> bool:
        return self.choice("format", ("json", "csv"), "json") == "csv"


def path_id(request: Request, name: str, high: int = MAX_ID) -> int:
    """The numeric id in the path (`name`), 404 when it cannot be one."""
    raw = request.path_params[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20 or int(raw) > high:
        raise BadParameter(name, f"no such {name.removesuffix('_id')}: {raw[:40]!r}", 404)
    return int(raw)


def read_routes(store: Engine, clock: Clock) -> list[Route]:
    """The /api/v1 read routes, for the app to mount behind its admin-token guard."""
    api = ReadApi(session_factory(store), clock)
    return [
        Route(PREFIX + path, api.handler(method), methods=["GET"])
        for path, method in (
            ("/sites", api.sites),
            ("/sites/{site_id}", api.site),
            ("/sites/{site_id}/measurements", api.measurements),
            ("/sites/{site_id}/schedule", api.schedule),
            ("/sites/{site_id}/events", api.events),
            ("/deliveries", api.deliveries),
            ("/deliveries/{delivery_id}", api.delivery),
            ("/alerts", api.alerts),
            ("/alerts/{alert_id}", api.alert),
            ("/alerts/{alert_id}/notifications", api.notifications),
            ("/energy", api.energy),
        )
    ]


Handler = Callable[[Request], Any]


class ReadApi:
    """The handlers; each reads in a worker thread on a session of its own."""

    def __init__(self, sessions: Callable[[], Session], clock: Clock) -> None:
        self.sessions, self.clock = sessions, clock

    def handler(self, method: Handler) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            try:
                response: Response = await method(request)
            except (BadParameter, ReadError) as exc:
                return refusal(exc)
            return response

        return handle

    async def _read(self, read: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.sessions() as session:
                return read(session)

        return await to_thread.run_sync(run)

    async def _list(
        self,
        query: Query,
        fetch: Callable[[Session, str | None, int], Page[T]],
        to_json: Callable[[T], dict[str, Any]],
        shape: CsvShape[T],
        filename: str,
    ) -> Response:
        """A page as JSON, or with ?format=csv every item from the cursor on, streamed."""
        if not query.csv:
            page = await self._read(lambda s: fetch(s, query.cursor, query.limit))
            return JSONResponse({"items": [to_json(i) for i in page.items], "next": page.next})
        # The first page is read before answering, so that bad input is still a 422.
        first = await self._read(lambda s: fetch(s, query.cursor, MAX_LIMIT))

        def after(cursor: str) -> Callable[[Session], Page[T]]:
            return lambda s: fetch(s, cursor, MAX_LIMIT)

        async def pages() -> AsyncIterator[Page[T]]:
            page = first
            for _ in range(MAX_EXPORT_PAGES):
                yield page
                if page.next is None:
                    return
                page = await self._read(after(page.next))

        return csv_response(pages(), shape, filename)

    async def _site(self, request: Request) -> int:
        """The site of the path: 404 unless something of it is stored."""
        site_id = path_id(request, "site_id")
        if not await self._read(lambda s: site_known(session=s, site_id=site_id)):
            raise BadParameter("site_id", f"no site {site_id} is known", 404)
        return site_id

    async def sites(self, request: Request) -> Response:
        query = Query.of(request, {"present"})
        present = {"true": True, "false": False, "": None}[
            query.choice("present", ("true", "false", ""), "")
        ]
        now = self.clock.now()
        return await self._list(
            query,
            lambda s, c, n: site_page(session=s, now=now, after=c, limit=n, present=present),
            site_json, rows.SITES_CSV, "sites.csv",
        )  # fmt: skip

    async def site(self, request: Request) -> Response:
        Query.of(request, ())
        site_id, now = path_id(request, "site_id"), self.clock.now()
        found = await self._read(lambda s: site_summary(session=s, site_id=site_id, now=now))
        if found is None:
            raise BadParameter("site_id", f"no site {site_id} is known", 404)
        return JSONResponse(site_json(found))

    async def measurements(self, request: Request) -> Response:
        query = Query.of(request, {"from", "to", "points"})
        site_id = await self._site(request)
        end = query.time("to") or self.clock.now()
        start = query.time("from") or end - DEFAULT_SPAN
        points = query.integer("points", 1, MAX_POINTS)
        if points is None:
            return await self._list(
                query,
                lambda s, c, n: measurement_page(
                    session=s, site_id=site_id, start=start, end=end, after=c, limit=n
                ),
                item_json, rows.MEASUREMENTS_CSV, f"site-{site_id}-measurements.csv",
            )  # fmt: skip
        if query.cursor is not None:
            raise BadParameter("cursor", "downsampled measurements come in one piece")
        found = await self._read(
            lambda s: downsampled_measurements(
                session=s, site_id=site_id, start=start, end=end, points=points
            )
        )
        if query.csv:
            single = one_page(found.buckets)
            name = f"site-{site_id}-measurements-{points}.csv"
            return csv_response(single, rows.BUCKETS_CSV, name)
        items = [item_json(b) for b in found.buckets]
        return JSONResponse({"items": items, "next": None, "width_s": found.width_s})

    async def _site_window(
        self,
        request: Request,
        read: Callable[..., Page[T]],
        to_json: Callable[[T], dict[str, Any]],
        shape: CsvShape[T],
        what: str,
    ) -> Response:
        """A site's list over an optional window [from, to): its schedule or its events."""
        query = Query.of(request, {"from", "to"})
        site_id = await self._site(request)
        start, end = query.time("from"), query.time("to")
        return await self._list(
            query,
            lambda s, c, n: read(
                session=s, site_id=site_id, start=start, end=end, after=c, limit=n
            ),
            to_json, shape, f"site-{site_id}-{what}.csv",
        )  # fmt: skip

    async def schedule(self, request: Request) -> Response:
        return await self._site_window(
            request, schedule_page, entry_json, rows.SCHEDULE_CSV, "schedule"
        )

    async def events(self, request: Request) -> Response:
        return await self._site_window(request, event_page, event_json, rows.EVENTS_CSV, "events")

    async def deliveries(self, request: Request) -> Response:
        query = Query.of(request, {"site"})
        site_id = query.integer("site", 0, MAX_ID)
        return await self._list(
            query,
            lambda s, c, n: delivery_page(session=s, site_id=site_id, after=c, limit=n),
            item_json, rows.DELIVERIES_CSV, "deliveries.csv",
        )  # fmt: skip

    async def delivery(self, request: Request) -> Response:
        Query.of(request, ())
        delivery_id = path_id(request, "delivery_id", MAX_BIG_ID)
        found = await self._read(lambda s: delivery(session=s, delivery_id=delivery_id))
        if found is None:
            raise BadParameter("delivery_id", f"no delivery {delivery_id} is stored", 404)
        return JSONResponse(item_json(found))

    async def alerts(self, request: Request) -> Response:
        query = Query.of(request, {"state"})
        state: Any = query.choice("state", ALERT_FILTERS, "firing")
        return await self._list(
            query,
            lambda s, c, n: alert_page(session=s, state=state, after=c, limit=n),
            item_json, rows.ALERTS_CSV, f"alerts-{state}.csv",
        )  # fmt: skip

    async def alert(self, request: Request) -> Response:
        Query.of(request, ())
        alert_id = path_id(request, "alert_id")
        found = await self._read(lambda s: alert(session=s, alert_id=alert_id))
        if found is None:
            raise BadParameter("alert_id", f"no alert {alert_id} is stored", 404)
        return JSONResponse(item_json(found))

    async def notifications(self, request: Request) -> Response:
        query = Query.of(request, ())
        alert_id = path_id(request, "alert_id")
        found = await self._read(lambda s: alert(session=s, alert_id=alert_id))
        if found is None:
            raise BadParameter("alert_id", f"no alert {alert_id} is stored", 404)
        key = group_key(found.rule, found.severity)
        return await self._list(
            query,
            lambda s, c, n: notification_page(
                session=s, group_key=key, since=found.starts_at, after=c, limit=n
            ),
            item_json, rows.NOTIFICATIONS_CSV, f"alert-{alert_id}-notifications.csv",
        )  # fmt: skip

    async def energy(self, request: Request) -> Response:
        """The delivery report (receiver.storage.reads.energy): not paged, one window."""
        query = Query.of(request, {"from", "to", "site"})
        for name in ("cursor", "limit"):
            if name in query.values:
                raise BadParameter(name, "the report comes in one piece: no paging")
        end = query.time("to") or self.clock.now()
        start = query.time("from") or end - DEFAULT_SPAN
        site_id = query.integer("site", 0, MAX_ID)
        found = await self._read(
            lambda s: energy_report(session=s, start=start, end=end, site_id=site_id)
        )
        if query.csv:
            return csv_response(one_page(found), rows.ENERGY_CSV, "energy.csv")
        return JSONResponse({"items": [energy_json(r) for r in found], "next": None})


async def one_page(items: list[T]) -> AsyncIterator[Page[T]]:
    yield Page(items, None)


def csv_response(pages: AsyncIterator[Page[T]], shape: CsvShape[T], filename: str) -> Response:
    """A streamed CSV download: the header, then each page's rows as the page arrives."""

    async def body() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(shape.header)
        async for page in pages:
            writer.writerows(shape.row(item) for item in page.items)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=headers)
