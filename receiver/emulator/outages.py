"""Outages of a box: the scripted ones' bookkeeping and a seeded generator of random ones.

Random outages are drawn in *emulated* time: each draw fixes the next outage's arrival,
duration, type, reason, source and (for a planned one) how far ahead it is announced,
always in the same order from the box's private rng. The sequence therefore depends
only on the seed and the rate, never on how often the box is advanced.

Arrivals form a Poisson process at `rate_per_day`, counted from the end of the previous
random outage (random outages of one box never overlap each other; a scripted one may
overlap a random one, and the site is unavailable while any is running). Times are
POSIX seconds (floats), as the box keeps them internally.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from receiver.cellect.enums import DowntimeType, EventReason, EventSource
from receiver.emulator.state import Outage

_DAY_S = 86_400.0
_PLANNED_SHARE = 0.3
# Planned work is announced 1–24 h ahead and lasts 1–6 h; unplanned trips are short
# (exponential, mean 1 h) but never under 5 minutes nor over 12 hours.
_PLANNED_LEAD_S = (3_600.0, 86_400.0)
_PLANNED_DURATION_S = (3_600.0, 6 * 3_600.0)
_UNPLANNED_MEAN_S = 3_600.0
_UNPLANNED_BOUNDS_S = (300.0, 12 * 3_600.0)
_PLANNED_REASONS = (EventReason.MAINTENANCE, EventReason.MAINTENANCE, EventReason.OTHER)
_PLANNED_SOURCES = (EventSource.CELLECT, EventSource.ESS)
_UNPLANNED_REASONS = (
    EventReason.OUTAGE,
    EventReason.EXTERNAL_FACTOR,
    EventReason.NO_REASON,
    EventReason.OTHER,
)
_UNPLANNED_SOURCES = (
    EventSource.ESS,
    EventSource.SYSTEM_BMS,
    EventSource.INVERTER,
    EventSource.CELLECT,
)


@dataclass(frozen=True, slots=True)
class OutageDraw:
    """One random outage decided in advance: when it is announced, starts and ends."""

    announce_ts: float
    start_ts: float
    end_ts: float
    downtime_type: DowntimeType
    reason: EventReason
    source: EventSource


class RandomOutages:
    """Draws a box's random outages one after the other, in emulated time."""

    def __init__(self, rng: random.Random, rate_per_day: float, start_ts: float) -> None:
        if rate_per_day < 0:
            raise ValueError("outage_rate_per_day must be >= 0")
        self._rng = rng
        self._rate_per_s = rate_per_day / _DAY_S
        self._after_ts = start_ts  # the next arrival is counted from here
        self._floor_ts = start_ts  # nothing is announced before this

    def next_draw(self) -> OutageDraw | None:
        """The next random outage, or None when the rate is 0."""
        if self._rate_per_s <= 0:
            return None
        rng = self._rng
        # Whole seconds: events are published with second-precision timestamps.
        start = float(round(self._after_ts + rng.expovariate(self._rate_per_s)))
        planned = rng.random() < _PLANNED_SHARE
        draw = self._planned(start) if planned else self._unplanned(start)
        self._after_ts = draw.end_ts
        self._floor_ts = draw.announce_ts
        return draw

    def _planned(self, start: float) -> OutageDraw:
        rng = self._rng
        lead = float(round(rng.uniform(*_PLANNED_LEAD_S)))
        duration = float(round(rng.uniform(*_PLANNED_DURATION_S)))
        reason = rng.choice(_PLANNED_REASONS)
        source = rng.choice(_PLANNED_SOURCES)
        announce = min(max(start - lead, self._floor_ts), start)
        return OutageDraw(announce, start, start + duration, DowntimeType.PLANNED, reason, source)

    def _unplanned(self, start: float) -> OutageDraw:
        rng = self._rng
        low, high = _UNPLANNED_BOUNDS_S
        duration = float(round(min(max(rng.expovariate(1.0 / _UNPLANNED_MEAN_S), low), high)))
        reason = rng.choice(_UNPLANNED_REASONS)
        source = rng.choice(_UNPLANNED_SOURCES)
        return OutageDraw(start, start, start + duration, DowntimeType.UNPLANNED, reason, source)


@dataclass(slots=True)
class OutageRun:
    """An announced outage the box still has to start or end (planned end, if any)."""

    outage: Outage
    start_ts: float
    end_ts: float | None

    def next_ts(self, now_ts: float) -> float | None:
        """When this run next changes the box: its start, then its planned end."""
        if self.start_ts > now_ts:
            return self.start_ts
        return self.end_ts

    def running(self, now_ts: float) -> bool:
        return self.start_ts <= now_ts
