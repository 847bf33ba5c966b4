"""Outages of a box: the bookkeeping of announced ones and a seeded generator of random ones.

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from receiver.cellect.enums import DowntimeType, EventReason, EventSource
from receiver.emulator.state import Outage

_DAY_S = 86_400.0
_INF = float("inf")
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


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class OutageBook:
    """A box's outages: every one announced (the events) and those still to start or end."""

    def __init__(
        self,
        site_id: int,
        *,
        rng: random.Random,
        rate_per_day: float,
        start_ts: float,
        next_event_id: Callable[[], int],
    ) -> None:
        self.site_id = site_id
        self.outages: list[Outage] = []
        self._runs: list[OutageRun] = []
        self._next_event_id = next_event_id
        self._random = RandomOutages(rng, rate_per_day, start_ts)
        self._next_random = self._random.next_draw()

    def running(self, now_ts: float) -> bool:
        """True while any outage has started and not ended."""
        return bool(self._runs) and any(run.running(now_ts) for run in self._runs)

    def next_ts(self, now_ts: float) -> float:
        """The next start, end or random announcement (inf when none is coming)."""
        best = _INF if self._next_random is None else self._next_random.announce_ts
        for run in self._runs:
            moment = run.next_ts(now_ts)
            if moment is not None:
                best = min(best, moment)
        return best

    def fire(self, moment: float) -> None:
        """Announce the random outages and end the runs that are due at `moment`."""
        while self._next_random is not None and self._next_random.announce_ts <= moment:
            d = self._next_random
            self.announce(d.downtime_type, d.reason, d.source, d.start_ts, d.end_ts, moment)
            self._next_random = self._random.next_draw()
        for run in list(self._runs):
            if run.end_ts is not None and run.start_ts <= moment and run.end_ts <= moment:
                self._finish(run, run.end_ts)

    def announce(
        self,
        downtime_type: DowntimeType,
        reason: EventReason,
        source: EventSource,
        start: float,
        end: float | None,
        now_ts: float,
    ) -> Outage:
        """Publish an outage (an event id is taken now) and schedule its start and end."""
        began = _dt(start)  # whole microseconds: the published start is the one that counts
        outage = Outage(
            event_id=self._next_event_id(),
            site_id=self.site_id,
            downtime_type=downtime_type,
            reason=reason,
            source=source,
            start=began,
            end=None,
            announced_at=_dt(min(now_ts, start)),
        )
        self.outages.append(outage)
        stop = None if end is None else _dt(end).timestamp()
        self._runs.append(OutageRun(outage, began.timestamp(), stop))
        return outage

    def end_latest(self, now_ts: float) -> Outage | None:
        """End the most recently started running outage; None when none is running."""
        running = [run for run in self._runs if run.running(now_ts)]
        if not running:
            return None
        run = max(running, key=lambda r: (r.start_ts, r.outage.event_id))
        self._finish(run, now_ts)
        return run.outage

    def _finish(self, run: OutageRun, at: float) -> None:
        run.outage.end = _dt(at)
        self._runs.remove(run)
