"""The demo trader against a small stand-in of the API that validates like the real one.

The stand-in (a Starlette app reached through httpx.ASGITransport) issues 6-hour access
tokens for one refresh token, serves PortfolioOverview and checks every posted schedule
with receiver.cellect.validation.validate_schedule at the shared clock's now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import parse_timestamp
from receiver.cellect.validation import SiteRatings, validate_schedule
from receiver.emulator.trader import MAX_REACH, DemoTrader

REFRESH = "refresh-SECRET-42"
NOW = datetime(2030, 3, 4, 10, 7, 30, tzinfo=UTC)
RATINGS = {1: (50.0, 40.0), 2: (100.0, 120.0), 3: (10.0, 10.0)}


@dataclass
class StandIn:
    """The API's state: issued tokens, accepted posts, refusals and injected failures."""

    clock: Clock
    tokens: dict[str, datetime] = field(default_factory=dict)
    posts: list[tuple[int, list[dict[str, Any]], datetime]] = field(default_factory=list)
    refusals: list[tuple[int, object]] = field(default_factory=list)
    unauthorised: int = 0
    fail_portfolio: int = 0
    fail_site: int | None = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/access-token", self.token, methods=["POST"]),
                Route("/v1/resources/sites/master-data", self.portfolio),
                Route("/v1/resources/sites/{site:int}/time-series", self.store, methods=["POST"]),
            ]
        )

    async def token(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {REFRESH}":
            return JSONResponse({"errorCode": 30083, "message": "bad refresh token"}, 400)
        token = f"access-SECRET-{len(self.tokens)}"
        self.tokens[token] = self.clock.now()
        return JSONResponse({"accessToken": token})

    def _authorised(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        issued = self.tokens.get(token)
        ok = issued is not None and self.clock.now() - issued < timedelta(hours=6)
        self.unauthorised += not ok
        return ok

    async def portfolio(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return JSONResponse({"errorCode": 30001, "message": "unauthorised"}, 401)
        if self.fail_portfolio:
            self.fail_portfolio -= 1
            return JSONResponse({"errorCode": 30003, "message": "fetch failed"}, 500)
        assert request.query_params["symbol"] == "PortfolioOverview"
        return JSONResponse(
            [
                {"siteId": s, "essPowerACRatedCharge": c, "essPowerACRatedDischarge": d}
                for s, (c, d) in RATINGS.items()
            ]
        )

    async def store(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return JSONResponse({"errorCode": 30001, "message": "unauthorised"}, 401)
        site = int(request.path_params["site"])
        body = await request.json()
        assert request.query_params["symbol"] == "EssPowerAC"
        result = validate_schedule(body, SiteRatings(*RATINGS[site]), self.clock.now())
        if not result.ok or site == self.fail_site:
            self.refusals.append((site, result.violations))
            return JSONResponse({"errorCode": 30091, "message": "refused"}, 400)
        self.posts.append((site, body["data"], self.clock.now()))
        return JSONResponse({"ok": True}, 201)


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(NOW)


@pytest.fixture
async def stand_in(clock: Clock) -> AsyncIterator[tuple[StandIn, httpx.AsyncClient]]:
    api = StandIn(clock)
    transport = httpx.ASGITransport(app=api.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield api, http


def _span(entries: list[dict[str, Any]]) -> tuple[datetime, datetime]:
    starts = [parse_timestamp(e["startDate"]) for e in entries]
    ends = [parse_timestamp(e["endDate"]) for e in entries]
    return min(s for s in starts if s), max(e for e in ends if e)


@pytest.mark.anyio
async def test_a_day_and_a_half_of_steps_is_all_accepted(
    clock: Clock, stand_in: tuple[StandIn, httpx.AsyncClient]
) -> None:
    """Every post validates at now, tokens are renewed before 6 h, and some posts revise."""
    api, http = stand_in
    trader = DemoTrader(http=http, refresh_token=REFRESH, clock=clock, seed=4, replace_rate=0.2)
    for _ in range(216):  # 36 h in 10-minute steps
        await trader.step()
        clock.advance(600)
    assert api.refusals == []
    assert api.unauthorised == 0
    assert len(api.tokens) >= 7
    assert {site for site, _, _ in api.posts} == set(RATINGS)
    assert all(_span(data)[1] <= at + MAX_REACH for _, data, at in api.posts)
    revisions = [p for p in trader.posts if p.replacement]
    assert revisions
    assert all(p.accepted for p in trader.posts)
    for revision in revisions:  # each revision overwrites an earlier, still future entry
        earlier = [
            e
            for p in trader.posts
            if p.site_id == revision.site_id and p.at < revision.at and p.accepted
            for e in p.entries
            if e.start >= revision.at + timedelta(minutes=5)
        ]
        assert any(o.start < n.end and n.start < o.end for o in earlier for n in revision.entries)


@pytest.mark.anyio
async def test_each_site_is_kept_planned_hours_ahead(
    clock: Clock, stand_in: tuple[StandIn, httpx.AsyncClient]
) -> None:
    """The first step plans every site 18 h ahead from the first slot after now + 6 min
    (beyond the monitor's 6 h ScheduleHorizonShort threshold, and refilled below 9 h)."""
    api, http = stand_in
    trader = DemoTrader(http=http, refresh_token=REFRESH, clock=clock, seed=1)
    assert await trader.step() == 3
    for _, data, _ in api.posts:
        first, last = _span(data)
        assert first >= NOW + timedelta(minutes=6)
        assert last <= NOW + timedelta(hours=18)
        assert last >= NOW + timedelta(hours=14)


@pytest.mark.anyio
async def test_errors_are_logged_without_secrets_and_do_not_stop_run(
    clock: Clock, stand_in: tuple[StandIn, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    """A failing portfolio read and a refused site are logged (no tokens); run() carries on."""
    caplog.set_level(logging.DEBUG)
    api, http = stand_in
    api.fail_portfolio, api.fail_site = 1, 2
    trader = DemoTrader(http=http, refresh_token=REFRESH, clock=clock, seed=3, interval_s=600)
    stop = asyncio.Event()
    task = asyncio.create_task(trader.run(stop))
    deadline = time.monotonic() + 5
    while len(api.posts) < 2 and time.monotonic() < deadline:
        clock.advance(600)
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert task.exception() is None
    assert {site for site, _, _ in api.posts} == {1, 3}
    assert "30003" in caplog.text
    assert "schedule for site 2 refused" in caplog.text
    assert "SECRET" not in caplog.text
