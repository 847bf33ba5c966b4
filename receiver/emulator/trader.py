"""The demo trader: a seeded partner that posts rolling schedules through the public API.

It gives a demo (and an end-to-end test) live traffic: every `interval_s` of emulated time
it gets an access token (refreshed well before its 6 h lifetime), reads PortfolioOverview,
and keeps each site planned `horizon_h` ahead in 15-minute entries: charge in the cheap
hours and discharge at the peaks of a seeded price curve, idle (a gap) in between, within
each site's ratings less a margin. Every entry starts at least 6 minutes after now (the API
wants 5) on a 15-minute boundary and ends within 47 h. Now and then (seeded) it re-plans part
of what it already posted on a revised forecast, so the box overwrites earlier entries.

Only the public API over the injected httpx client is used. API errors are logged without
secrets (no token, no Authorization header) and never end `run()`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from receiver.cellect import paths
from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import format_timestamp
from receiver.runtime import waiting

logger = logging.getLogger(__name__)

SLOT = timedelta(minutes=15)
LEAD = timedelta(minutes=6)  # the API wants 5; one spare minute for a fast clock
MAX_REACH = timedelta(hours=47)  # the API allows 48
TOKEN_MAX_AGE = timedelta(hours=5)  # access tokens live 6 h
POWER_MARGIN = 0.9  # never ask for more than 90 % of a rating
CHEAP_SHARE = 0.25  # the cheapest quarter of the day's hours charges ...
PEAK_SHARE = 0.25  # ... and the dearest quarter discharges
# The trader keeps its plan's state of charge within this band of the capacity, by its own
# forecast (efficiency √0.92 each way, as a monitor assumes by default): a real trader
# does not sell energy its battery will not hold, so the demo's plans are feasible until
# someone breaks a box on purpose (the emulator's control API).
SOC_BAND = (0.15, 0.85)
EFFICIENCY = math.sqrt(0.92)


class PriceCurve:
    """A seeded day-ahead price (EUR/MWh) per UTC hour: night trough, two peaks, solar dip.

    Each hour's price depends only on the seed and the hour, never on call order.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def price(self, at: datetime) -> float:
        hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        day = random.Random(f"{self._seed}:day:{hour.date().isoformat()}")
        morning, evening, solar = day.uniform(20, 50), day.uniform(40, 90), day.uniform(10, 40)
        h = hour.hour
        shape = (
            morning * math.exp(-(((h - 8) / 2.0) ** 2))
            + evening * math.exp(-(((h - 19) / 2.5) ** 2))
            - solar * math.exp(-(((h - 13) / 2.5) ** 2))
            - 20 * math.exp(-(((h - 3) / 3.0) ** 2))
        )
        noise = random.Random(f"{self._seed}:hour:{hour.isoformat()}").uniform(-6, 6)
        return round(70 + shape + noise, 2)


@dataclass(frozen=True)
class Ratings:
    """A site as the trader reads it from PortfolioOverview (kW, positive magnitudes; the
    capacity in kWh and the SoC in percent, when known)."""

    site_id: int
    rated_charge_kw: float
    rated_discharge_kw: float
    capacity_kwh: float | None = None
    soc_pct: float | None = None


def stored_after(stored_kwh: float, entries: Sequence[PlannedEntry], until: datetime,
                 since: datetime) -> float:  # fmt: skip
    """The trader's forecast of the stored energy at `until`, from `stored_kwh` at `since`
    through `entries` (the parts of them between the two moments)."""
    for entry in entries:
        start, end = max(entry.start, since), min(entry.end, until)
        if end <= start:
            continue
        hours = (end - start).total_seconds() / 3600.0
        if entry.power_kw < 0:
            stored_kwh += -entry.power_kw * hours * EFFICIENCY
        else:
            stored_kwh -= entry.power_kw * hours / EFFICIENCY
    return stored_kwh


@dataclass(frozen=True)
class PlannedEntry:
    start: datetime
    end: datetime
    power_kw: float  # + discharge, - charge

    def wire(self) -> dict[str, object]:
        return {
            "startDate": format_timestamp(self.start),
            "endDate": format_timestamp(self.end),
            "essPowerAC": self.power_kw,
        }


def ceil_slot(moment: datetime) -> datetime:
    """The first 15-minute boundary at or after `moment`."""
    floor = floor_slot(moment)
    return floor if floor == moment else floor + SLOT


def floor_slot(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def thresholds(curve: PriceCurve, start: datetime) -> tuple[float, float]:
    """(charge at or below, discharge at or above): quantiles of the next 24 hourly prices."""
    prices = sorted(curve.price(start + timedelta(hours=h)) for h in range(24))
    cheap = prices[int(len(prices) * CHEAP_SHARE) - 1]
    peak = prices[len(prices) - int(len(prices) * PEAK_SHARE)]
    return cheap, peak


def plan(
    curve: PriceCurve,
    site: Ratings,
    start: datetime,
    end: datetime,
    rng: random.Random,
    *,
    forecast_noise: float = 0.0,
    stored_kwh: float | None = None,
) -> list[PlannedEntry]:
    """15-minute entries over [start, end): charge when cheap, discharge at peaks, else a gap.

    With the site's capacity and `stored_kwh` (the energy stored at `start`, by the
    trader's forecast), each charge and discharge is cut so that the plan keeps the SoC
    within SOC_BAND; an entry cut below 1 kW is left out (a gap)."""
    cheap, peak = thresholds(curve, start)
    low = high = None
    if stored_kwh is not None and site.capacity_kwh:
        low, high = (share * site.capacity_kwh for share in SOC_BAND)
    entries = []
    slot = start
    hours = SLOT.total_seconds() / 3600.0
    while slot + SLOT <= end:
        price = curve.price(slot) + (rng.gauss(0, forecast_noise) if forecast_noise else 0.0)
        share = POWER_MARGIN * rng.uniform(0.6, 1.0)
        power = 0.0
        if price <= cheap:
            power = -site.rated_charge_kw * share
            if stored_kwh is not None and high is not None:
                power = -min(-power, max(high - stored_kwh, 0.0) / (hours * EFFICIENCY))
        elif price >= peak:
            power = site.rated_discharge_kw * share
            if stored_kwh is not None and low is not None:
                power = min(power, max(stored_kwh - low, 0.0) * EFFICIENCY / hours)
        power = math.copysign(_kw(abs(power)), power)
        if abs(power) >= 1.0:
            entry = PlannedEntry(slot, slot + SLOT, power)
            entries.append(entry)
            if stored_kwh is not None:
                stored_kwh = stored_after(stored_kwh, [entry], entry.end, entry.start)
        slot += SLOT
    return entries


def _kw(value: float) -> float:
    return math.floor(value * 10) / 10  # rounded down: never above the rating


@dataclass(frozen=True)
class TraderPost:
    """One post the trader made (for the demo's logs and for tests)."""

    site_id: int
    entries: tuple[PlannedEntry, ...]
    replacement: bool
    status_code: int | None
    at: datetime

    @property
    def accepted(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class ApiError(Exception):
    """A refused or failed API call; the message carries no secret."""


class DemoTrader:
    """Posts seeded rolling schedules for every site of the portfolio through the API."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        refresh_token: str,
        clock: Clock,
        seed: int,
        interval_s: float = 600.0,
        token_path: str = paths.ACCESS_TOKEN,
        horizon_h: float = 18.0,
        refill_below_h: float = 9.0,
        replace_rate: float = 0.15,
        keep_band: bool = True,
    ) -> None:
        self._http = http
        self._refresh_token = refresh_token
        self._clock = clock
        self._rng = random.Random(seed)
        self._curve = PriceCurve(seed)
        self._interval_s = interval_s
        self._token_path = token_path
        self._horizon = timedelta(hours=horizon_h)
        self._refill_below = timedelta(hours=refill_below_h)
        self._replace_rate = replace_rate
        # False: plan at the ratings whatever the batteries hold (busier schedules, for
        # tests that need many entries; their plans may be infeasible).
        self._keep_band = keep_band
        self._access: tuple[str, datetime] | None = None
        self._planned_until: dict[int, datetime] = {}
        self._posted: dict[int, list[PlannedEntry]] = {}
        self._sites: dict[int, Ratings] = {}
        self.posts: list[TraderPost] = []
        self.token_requests = 0

    @property
    def curve(self) -> PriceCurve:
        return self._curve

    # --- API calls ----------------------------------------------------------------------

    async def _token(self) -> str:
        now = self._clock.now()
        if self._access is not None and now - self._access[1] < TOKEN_MAX_AGE:
            return self._access[0]
        self.token_requests += 1
        response = await self._http.post(
            self._token_path, headers={"authorization": f"Bearer {self._refresh_token}"}
        )
        body = _json(response)
        token = body.get("accessToken") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str):
            raise ApiError(f"access token refused: {_describe(response, body)}")
        self._access = (token, now)
        return token

    async def _call(
        self, method: str, path: str, *, params: dict[str, str], body: object = None
    ) -> httpx.Response:
        """An authorised request; one fresh token and retry if the API answers 401."""
        response: httpx.Response | None = None
        for _ in range(2):
            token = await self._token()
            headers = {"authorization": f"Bearer {token}"}
            response = await self._http.request(
                method, path, headers=headers, params=params, json=body
            )
            if response.status_code != 401:
                break
            self._access = None  # revoked or expired early: fetch a new one once
        assert response is not None
        return response

    async def _portfolio(self) -> list[Ratings]:
        response = await self._call(
            "GET", paths.PORTFOLIO_MASTER_DATA, params={"symbol": "PortfolioOverview"}
        )
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, list):
            raise ApiError(f"portfolio read failed: {_describe(response, body)}")
        return sorted(
            (
                Ratings(
                    int(site["siteId"]),
                    float(site["essPowerACRatedCharge"]),
                    float(site["essPowerACRatedDischarge"]),
                    _number(site.get("essInstalledEnergyCapacity")),
                    _number(site.get("essSoC")),
                )
                for site in body
            ),
            key=lambda r: r.site_id,
        )

    async def _post(
        self, site: Ratings, entries: Sequence[PlannedEntry], replacement: bool
    ) -> bool:
        response = await self._call(
            "POST",
            paths.time_series(site.site_id),
            params={"symbol": "EssPowerAC"},
            body={"data": [e.wire() for e in entries]},
        )
        post = TraderPost(
            site.site_id, tuple(entries), replacement, response.status_code, self._clock.now()
        )
        self.posts.append(post)
        if post.accepted:
            self._remember(site.site_id, entries)
        del self.posts[:-1000]  # keep the last posts only
        if not post.accepted:
            logger.warning(
                "demo trader: schedule for site %d refused: %s",
                site.site_id,
                _describe(response, _json(response)),
            )
        return post.accepted

    # --- planning -----------------------------------------------------------------------

    async def _serve_site(self, site: Ratings) -> int:
        now = self._clock.now()
        earliest = ceil_slot(now + LEAD)
        planned = max(self._planned_until.get(site.site_id, earliest), earliest)
        replace = self._rng.random() < self._replace_rate
        if planned - now < self._refill_below:
            end = floor_slot(min(now + self._horizon, now + MAX_REACH))
            entries = plan(
                self._curve, site, planned, end, self._rng, stored_kwh=self._stored(site, planned)
            )
            if entries and not await self._post(site, entries, replacement=False):
                return 0
            self._planned_until[site.site_id] = max(end, planned)
            return 1 if entries else 0
        revision = self._revision(site, earliest, planned) if replace else None
        return int(revision is not None and await self._post(site, revision, True))

    def _revision(
        self, site: Ratings, earliest: datetime, planned: datetime
    ) -> list[PlannedEntry] | None:
        """1-3 h re-planned on a noisier forecast around a posted entry it must overwrite."""
        candidates = [e for e in self._posted.get(site.site_id, []) if e.start >= earliest]
        if not candidates:
            return None
        anchor = candidates[self._rng.randrange(len(candidates))]
        start = max(earliest, anchor.start - SLOT * self._rng.randint(0, 4))
        end = min(start + SLOT * self._rng.randint(4, 12), planned)
        end = max(end, anchor.end)
        entries = plan(
            self._curve, site, start, end, self._rng, forecast_noise=25,
            stored_kwh=self._stored(site, start),
        )  # fmt: skip
        if all(e.start != anchor.start for e in entries):  # keep the anchor overwritten
            halved = math.copysign(_kw(abs(anchor.power_kw) * 0.5), anchor.power_kw)
            entries = sorted(
                [*entries, PlannedEntry(anchor.start, anchor.end, halved)], key=lambda e: e.start
            )
        if not self._feasible(site, entries):
            return None  # the revision would push the rest of the plan out of the band
        return entries

    def _stored(self, site: Ratings, at: datetime) -> float | None:
        """The energy the site will hold at `at` by the trader's forecast: its SoC now
        through the entries posted before then (None when its capacity is unknown)."""
        if not self._keep_band or not site.capacity_kwh or site.soc_pct is None:
            return None
        now = self._clock.now()
        stored = site.soc_pct / 100.0 * site.capacity_kwh
        return stored_after(stored, self._posted.get(site.site_id, []), at, now)

    def _feasible(self, site: Ratings, entries: Sequence[PlannedEntry]) -> bool:
        """Whether the posted plan with `entries` in it stays within the band (loosely: the
        box's own limits are wider)."""
        stored = self._stored(site, self._clock.now())
        if stored is None or not site.capacity_kwh:
            return True
        capacity, now = site.capacity_kwh, self._clock.now()
        new = sorted(entries, key=lambda e: e.start)
        kept = [
            old
            for old in self._posted.get(site.site_id, [])
            if old.end > now and not any(old.start < e.end and e.start < old.end for e in new)
        ]
        for entry in sorted([*kept, *new], key=lambda e: e.start):
            stored = stored_after(stored, [entry], entry.end, max(entry.start, now))
            if not 0.1 * capacity <= stored <= 0.9 * capacity:
                return False
        return True

    def _remember(self, site_id: int, entries: Sequence[PlannedEntry]) -> None:
        """Mirror the cloud: posted entries replace the future ones they overlap."""
        now = self._clock.now()
        kept = [
            old
            for old in self._posted.get(site_id, [])
            if old.end > now and not any(old.start < e.end and e.start < old.end for e in entries)
        ]
        self._posted[site_id] = sorted([*kept, *entries], key=lambda e: e.start)

    async def step(self) -> int:
        """One round for every site it has seen in the portfolio; returns posts accepted.

        A site that left the portfolio (its box offline) keeps being planned, as a real
        trader would: its new entries then fail, which is what a demo should show.
        """
        self._sites.update((site.site_id, site) for site in await self._portfolio())
        accepted = 0
        for site_id in sorted(self._sites):
            accepted += await self._serve_site(self._sites[site_id])
        return accepted

    async def run(self, stop: asyncio.Event) -> None:
        """A step every `interval_s` of emulated time until `stop` is set; errors are logged."""
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:  # a demo must survive any API hiccup
                logger.warning("demo trader: step failed: %s", _safe(exc))
            next_step = self._clock.now() + timedelta(seconds=self._interval_s)
            await waiting.until(self._clock, next_step, stop)


def _number(value: object) -> float | None:
    """A number of the portfolio, or None when it is missing (the trader then plans
    without the energy band)."""
    return float(value) if isinstance(value, int | float) else None


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _describe(response: httpx.Response, body: object) -> str:
    """HTTP status plus the Cellect error code and message: never headers or tokens."""
    if isinstance(body, dict):
        return f"HTTP {response.status_code} {body.get('errorCode')}: {body.get('message')}"
    return f"HTTP {response.status_code}"


def _safe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
