"""Helpers for the emulated API's tests: an emulator on a frozen clock, reached over HTTP.

`open_api()` yields an `Api`: the Emulator (clock frozen at NOW, refresh tokens for
partners 1-3), an httpx.AsyncClient on its app through ASGITransport, `auth()` for an
access token header, and `stored()` listing every entry of every box for assertions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import format_timestamp
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.emulator.state import StoredEntry

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
REFRESH = {1: "refresh-token-partner-1", 2: "refresh-token-partner-2", 3: "refresh-token-p3"}
STORE_QUERY = {"symbol": "EssPowerAC"}


def ts(minutes: float) -> str:
    """The wire timestamp `minutes` after NOW."""
    return format_timestamp(NOW + timedelta(minutes=minutes))


def entry(start_min: float, end_min: float, power: float = -10.0) -> dict[str, Any]:
    return {"startDate": ts(start_min), "endDate": ts(end_min), "essPowerAC": power}


@dataclass
class Api:
    """An emulator with one refresh token per partner, and an HTTP client on its app."""

    emulator: Emulator
    http: httpx.AsyncClient

    @property
    def clock(self) -> Clock:
        return self.emulator.clock

    async def auth(self, partner: int = 1) -> dict[str, str]:
        """Authorization headers with a fresh access token of `partner`."""
        answer = await self.http.post(
            "/v1/access-token", headers={"Authorization": f"Bearer {REFRESH[partner]}"}
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['accessToken']}"}

    async def store(self, site: int, *entries: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            f"/v1/resources/sites/{site}/time-series",
            params=STORE_QUERY,
            json={"data": list(entries)},
            headers=await self.auth(),
        )

    async def ex_ante(self, site: int, start_min: float, end_min: float) -> list[dict[str, Any]]:
        params = {
            "symbol": "ExAnteInformationEssPowerAC",
            "startDate": ts(start_min),
            "endDate": ts(end_min),
        }
        answer = await self.http.get(
            f"/v1/resources/sites/{site}/time-series", params=params, headers=await self.auth()
        )
        assert answer.status_code == 200, answer.text
        results: list[dict[str, Any]] = answer.json()["results"]
        return results

    def stored(self) -> list[StoredEntry]:
        """Every entry ever stored on any box (over a wide window)."""
        start, end = NOW - timedelta(days=30), NOW + timedelta(days=30)
        return [e for box in self.emulator.boxes.values() for e in box.entries_between(start, end)]


@asynccontextmanager
async def open_api(sites: int = 3, seed: int = 1, **options: Any) -> AsyncIterator[Api]:
    """An emulator on a clock frozen at NOW, with refresh tokens for partners 1–3."""
    emulator = Emulator(sites=sites, seed=seed, clock=Clock.frozen(NOW), **options)
    for partner, token in REFRESH.items():
        emulator.issue_refresh_token(partner, token=token)
    transport = httpx.ASGITransport(app=create_emulator_app(emulator))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        yield Api(emulator, http)
