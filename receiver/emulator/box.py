"""The emulated Cellect Box of one site: a pure, event-driven simulation advanced lazily.

The box never runs on its own: every call first advances it to the caller's `now`
(never backwards), jumping from one event to the next — a transfer falling due, an
entry starting or ending, an outage starting or ending, a random outage announced —
and integrating the battery exactly (piecewise-constant power, `battery.integrate`) in
between. There are no fixed steps, so advancing costs the number of events, not time.

Statuses (the returned StatusChanges are what webhooks must report):
- store(): new entries are 1 InProgress. Live entries (1/2) a new entry overlaps become
  5 Overwritten; one already running keeps executing until the new entry starts.
- Online, an entry is transferred `transfer_delay_s` after it was stored → 2 Implemented.
  One whose start comes before it could be transferred → 3 ImplementationFailed.
  On reconnect, waiting entries whose start is still ahead are transferred at once
  (or at stored + transfer_delay_s, if that is later).
- delete(): live entries not yet started overlapping [start, end) → 4 Deleted.

Execution: the site's AC power is the running transferred entry's power, 0 kW in a gap
(standby) and 0 during an outage, times the inverter's factor (1, or less while derated:
`set_inverter_factor`), tapered near the SoC limits and curtailed to 0 at them
(receiver.emulator.battery). The meter (`measured_power_kw`) reads that power with
optional seeded noise (`set_meter_noise`); the battery follows the true power. Offline, the box
keeps executing what it already holds (at most 48 h ahead, as every entry ends within
48 h of its post) and hears of nothing new: an overwrite or delete made in the cloud
meanwhile reaches it only on reconnect, so it may have executed an entry the cloud
already reports as 5 or 4 (as a real disconnected box would).

Changes produced by a call that returns no changes (start_outage, end_outage,
set_reporting) are kept and returned by the next call that does.
Times are kept internally as POSIX seconds (floats) to keep advancing cheap.
A Box is not thread-safe: its owner (the cloud) serialises the calls.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from receiver.cellect.enums import DowntimeType, EventReason, EventSource, ImplementationStatus
from receiver.cellect.models import ScheduleEntry
from receiver.emulator.battery import BatteryParams, effective_power_kw, integrate
from receiver.emulator.outages import OutageBook
from receiver.emulator.state import Outage, SiteSpec, StatusChange, StoredEntry

_INF = float("inf")
_LIVE = (ImplementationStatus.IN_PROGRESS, ImplementationStatus.IMPLEMENTED)
_PLAN_COMPACT_AT = 512  # drop finished plan segments once this many have piled up


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class _Slot:
    """A stored entry with its times as floats; `run_end` is where the box stops it."""

    __slots__ = ("end", "entry", "ready", "run_end", "start")

    def __init__(self, entry: StoredEntry, ready: float) -> None:
        self.entry = entry
        self.start = entry.start.timestamp()
        self.end = entry.end.timestamp()
        self.ready = ready
        self.run_end = self.end


class Box:
    """One site's Cellect Box: schedule statuses, battery, link and outages."""

    def __init__(
        self,
        spec: SiteSpec,
        *,
        now: datetime,
        rng: random.Random,
        transfer_delay_s: float = 30.0,
        outage_rate_per_day: float = 0.0,
        next_event_id: Callable[[], int],
    ) -> None:
        self.spec = spec
        self._params = BatteryParams.of(spec)
        self._stored = self._params.clamp(spec.capacity_kwh * spec.initial_soc_pct / 100.0)
        self._t = now.timestamp()
        self._delay = transfer_delay_s
        self._online = True
        self._reporting = True
        self._entry_ids = 0
        self._slots: list[_Slot] = []  # every entry ever stored, by start
        self._slot_starts: list[float] = []
        self._longest_s = 0.0
        self._live: list[_Slot] = []  # status 1/2 and possibly unfinished, by start
        self._transfers: list[tuple[float, int, _Slot]] = []  # heap by ready time
        self._starts: list[tuple[float, int, _Slot]] = []  # heap: start = transfer deadline
        self._plan: list[_Slot] = []  # transferred entries, by start
        self._plan_idx = 0  # first segment not finished
        self._pending_cuts: dict[int, tuple[_Slot, float]] = {}
        self._unreported: list[StatusChange] = []
        self._book = OutageBook(
            spec.site_id,
            rng=random.Random(rng.getrandbits(64)),  # private: independent of call order
            rate_per_day=outage_rate_per_day,
            start_ts=self._t,
            next_event_id=next_event_id,
        )
        self._factor = 1.0  # the inverter's: every AC power scaled by it (derating)
        self._noise = 0.0  # the meter's relative standard deviation
        self._meter_rng = random.Random(f"{spec.site_id}:{rng.getrandbits(64)}")
        self._charged_ac_kwh = 0.0
        self._discharged_ac_kwh = 0.0
        self._at_cache = (self._t, _dt(self._t))
        self._next_at: float | None = None  # next event time, None: to be computed

    # ----- live state -------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The instant the simulation has reached."""
        return _dt(self._t)

    @property
    def soc_pct(self) -> float:
        return self._stored / self._params.capacity_kwh * 100.0

    @property
    def stored_kwh(self) -> float:
        return self._stored

    @property
    def power_kw(self) -> float:
        """The AC power flowing now (derated, tapered, curtailed)."""
        return effective_power_kw(self._stored, self._demand_kw() * self._factor, self._params)

    def measured_power_kw(self) -> float:
        """The power as the site's meter reads it: `power_kw`, with the meter's noise (a
        Gaussian relative error of standard deviation `meter_noise`; none by default).
        Each reading draws from the box's own seeded rng."""
        power = self.power_kw
        if self._noise == 0.0 or power == 0.0:
            return power
        return power * (1.0 + self._meter_rng.gauss(0.0, self._noise))

    @property
    def inverter_factor(self) -> float:
        return self._factor

    @property
    def meter_noise(self) -> float:
        return self._noise

    def set_inverter_factor(self, factor: float, *, now: datetime) -> list[StatusChange]:
        """Derate the inverter from `now` on: every AC power is `factor` × the scheduled
        one (1 restores it). The battery is advanced to `now` at the old factor first."""
        if not 0.0 <= factor <= 1.0:
            raise ValueError("factor must be within [0, 1]")
        changes = self._advance(now)
        self._factor = factor
        return changes

    def set_meter_noise(self, noise: float) -> None:
        """The meter's relative noise from now on (0: exact readings)."""
        if not 0.0 <= noise <= 0.5:
            raise ValueError("noise must be within [0, 0.5]")
        self._noise = noise

    @property
    def available(self) -> bool:
        return not self._book.running(self._t)

    @property
    def outages(self) -> list[Outage]:
        """Every outage ever announced (the Availability events), open ones with end None."""
        return self._book.outages

    @property
    def online(self) -> bool:
        return self._online

    @property
    def reporting(self) -> bool:
        return self._reporting

    @property
    def charged_ac_kwh(self) -> float:
        """AC energy drawn from the grid so far (the integral of the charging power)."""
        return self._charged_ac_kwh

    @property
    def discharged_ac_kwh(self) -> float:
        """AC energy exported so far (the integral of the discharging power)."""
        return self._discharged_ac_kwh

    # ----- schedule -----------------------------------------------------------------
    def store(
        self, entries: Sequence[ScheduleEntry], *, post_id: int, now: datetime
    ) -> list[StatusChange]:
        """Accept a validated post: overwrite what it overlaps, queue its entries."""
        changes = self._advance(now)
        slots = [self._new_slot(e, post_id) for e in sorted(entries, key=lambda e: e.start_date)]
        self._next_at = None
        self._overwrite(slots, changes)
        for slot in slots:
            self._register(slot)
            changes.append(self._change(slot))
        return changes

    def delete(self, *, start: datetime, end: datetime, now: datetime) -> list[StatusChange]:
        """Delete the live entries not yet started that overlap [start, end)."""
        changes = self._advance(now)
        self._next_at = None
        lo, hi = start.timestamp(), end.timestamp()
        for slot in self._live:
            waiting = slot.start > self._t and slot.entry.status in _LIVE
            if waiting and slot.start < hi and slot.end > lo:
                self._set(slot, ImplementationStatus.DELETED, self._at(self._t), changes)
                self._cut(slot, slot.start)
        return changes

    def entries_between(self, start: datetime, end: datetime) -> list[StoredEntry]:
        """Every entry ever stored that overlaps [start, end), by start, in any status.

        The records are the box's own (not copies): read them, do not change them.
        """
        lo, hi = start.timestamp(), end.timestamp()
        found: list[StoredEntry] = []
        i = bisect_left(self._slot_starts, hi) - 1
        while i >= 0 and self._slot_starts[i] > lo - self._longest_s:
            if self._slots[i].end > lo:
                found.append(self._slots[i].entry)
            i -= 1
        found.reverse()
        return found

    def advance_to(self, now: datetime) -> list[StatusChange]:
        return self._advance(now)

    def set_battery(self, spec: SiteSpec, *, soc_pct: float | None, now: datetime) -> None:
        """Give the box another battery (capacity, ratings, limits, efficiencies) from
        `now` on, at `soc_pct` (None: the same stored share of the capacity), clamped to
        its limits: what a test needs to start from a known state."""
        self._unreported += self._advance(now)
        share = self._stored / self._params.capacity_kwh
        self.spec = spec
        self._params = BatteryParams.of(spec)
        fraction = share if soc_pct is None else soc_pct / 100.0
        self._stored = self._params.clamp(spec.capacity_kwh * fraction)
        self._next_at = None

    # ----- link and outages -------------------------------------------------------
    def set_online(self, online: bool, *, now: datetime) -> list[StatusChange]:
        """Cut or restore the link; on reconnect apply queued cuts and transfer at once."""
        changes = self._advance(now)
        if online and not self._online:
            for slot, cut in self._pending_cuts.values():
                slot.run_end = min(slot.run_end, max(cut, self._t))
            self._pending_cuts.clear()
        self._online = online
        self._next_at = None
        self._run_until(self._t, changes)
        return changes

    def set_reporting(self, reporting: bool, *, now: datetime) -> None:
        self._unreported = self._advance(now)
        self._reporting = reporting

    def start_outage(
        self,
        *,
        now: datetime,
        downtime_type: DowntimeType,
        reason: EventReason,
        source: EventSource,
        duration_s: float | None,
        starts_in_s: float = 0.0,
    ) -> Outage:
        """Announce an outage starting in `starts_in_s`, lasting `duration_s` (None: open)."""
        if starts_in_s < 0 or (duration_s is not None and duration_s < 0):
            raise ValueError("starts_in_s and duration_s must be >= 0")
        self._unreported = self._advance(now)
        start = self._t + starts_in_s
        end = None if duration_s is None else start + duration_s
        outage = self._book.announce(downtime_type, reason, source, start, end, self._t)
        self._next_at = None
        self._run_until(self._t, self._unreported)
        return outage

    def end_outage(self, *, now: datetime) -> Outage | None:
        """End the most recently started running outage now; None when none is running."""
        self._unreported = self._advance(now)
        self._next_at = None
        return self._book.end_latest(self._t)

    # ----- the event loop -----------------------------------------------------------
    def _advance(self, now: datetime) -> list[StatusChange]:
        changes, self._unreported = self._unreported, []
        self._run_until(now.timestamp(), changes)
        return changes

    def _run_until(self, target: float, changes: list[StatusChange]) -> None:
        # The next event time is kept between calls; a method that adds events resets it
        # (a stale, earlier value would only cost one idle pass).
        moment = self._next_at if self._next_at is not None else self._next_event_ts()
        while moment <= target:
            moment = max(moment, self._t)
            self._integrate_to(moment)
            self._fire(moment, changes)
            moment = self._next_event_ts()
        self._integrate_to(target)
        self._next_at = moment

    def _next_event_ts(self) -> float:
        best = _INF
        if self._online and self._prune(self._transfers):
            best = self._transfers[0][0]
        if self._prune(self._starts):
            best = min(best, self._starts[0][0])
        segment = self._segment()
        if segment is not None:
            best = min(best, segment.start if segment.start > self._t else segment.run_end)
        return min(best, self._book.next_ts(self._t))

    @staticmethod
    def _prune(heap: list[tuple[float, int, _Slot]]) -> bool:
        """Drop entries no longer waiting; True when one is left on top."""
        while heap:
            entry = heap[0][2].entry
            if entry.status is ImplementationStatus.IN_PROGRESS and not entry.transferred:
                return True
            heapq.heappop(heap)
        return False

    def _fire(self, moment: float, changes: list[StatusChange]) -> None:
        # Transfers first: an entry transferred at the very instant it starts runs.
        while self._online and self._prune(self._transfers) and self._transfers[0][0] <= moment:
            self._transfer(heapq.heappop(self._transfers)[2], moment, changes)
        while self._prune(self._starts) and self._starts[0][0] <= moment:
            slot = heapq.heappop(self._starts)[2]
            self._set(slot, ImplementationStatus.IMPLEMENTATION_FAILED, slot.entry.start, changes)
        self._book.fire(moment)

    def _integrate_to(self, moment: float) -> None:
        if moment <= self._t:
            return
        power = self._demand_kw() * self._factor
        if power != 0.0:
            step = integrate(self._stored, power, moment - self._t, self._params)
            self._stored = step.stored_kwh
            self._charged_ac_kwh += step.charged_ac_kwh
            self._discharged_ac_kwh += step.discharged_ac_kwh
        self._t = moment

    def _segment(self) -> _Slot | None:
        """The transferred entry running now or next (skipping finished ones)."""
        plan, t = self._plan, self._t
        if self._plan_idx < len(plan) and plan[self._plan_idx].run_end > t:
            return plan[self._plan_idx]  # the usual case: nothing finished since last time
        while self._plan_idx < len(plan) and plan[self._plan_idx].run_end <= t:
            self._plan_idx += 1
        if self._plan_idx >= _PLAN_COMPACT_AT:
            del plan[: self._plan_idx]
            self._plan_idx = 0
        return plan[self._plan_idx] if self._plan_idx < len(plan) else None

    def _demand_kw(self) -> float:
        if self._book.running(self._t):
            return 0.0
        segment = self._segment()
        if segment is None or segment.start > self._t:
            return 0.0
        return segment.entry.power_kw

    # ----- status bookkeeping -------------------------------------------------------
    def _new_slot(self, entry: ScheduleEntry, post_id: int) -> _Slot:
        self._entry_ids += 1
        stored = StoredEntry(
            entry_id=self._entry_ids,
            post_id=post_id,
            start=entry.start_date,
            end=entry.end_date,
            power_kw=entry.ess_power_ac,
            status=ImplementationStatus.IN_PROGRESS,
            status_at=self._at(self._t),
        )
        return _Slot(stored, self._t + self._delay)

    def _register(self, slot: _Slot) -> None:
        index = bisect_right(self._slot_starts, slot.start)
        self._slots.insert(index, slot)
        self._slot_starts.insert(index, slot.start)
        self._longest_s = max(self._longest_s, slot.end - slot.start)
        heapq.heappush(self._transfers, (slot.ready, slot.entry.entry_id, slot))
        heapq.heappush(self._starts, (slot.start, slot.entry.entry_id, slot))

    def _overwrite(self, slots: list[_Slot], changes: list[StatusChange]) -> None:
        """Mark live entries the new ones overlap as Overwritten, then merge the new ones."""
        t = self._t
        live = [s for s in self._live if s.entry.status in _LIVE and s.end > t]
        ends = [s.end for s in live]  # live entries never overlap, so ends are sorted too
        for new in slots:
            i = bisect_right(ends, new.start)
            while i < len(live) and live[i].start < new.end:
                old = live[i]
                i += 1
                if old.entry.status in _LIVE:
                    self._set(old, ImplementationStatus.OVERWRITTEN, self._at(t), changes)
                    # A running entry stops where the new one starts; a future one never runs.
                    self._cut(old, new.start if old.start <= t else old.start)
        kept = [s for s in live if s.entry.status in _LIVE]
        self._live = sorted(kept + slots, key=lambda s: s.start)

    def _cut(self, slot: _Slot, at: float) -> None:
        if not slot.entry.transferred:
            return
        if self._online:
            slot.run_end = min(slot.run_end, at)
        else:
            _, earlier = self._pending_cuts.get(slot.entry.entry_id, (slot, at))
            self._pending_cuts[slot.entry.entry_id] = (slot, min(at, earlier))

    def _transfer(self, slot: _Slot, moment: float, changes: list[StatusChange]) -> None:
        slot.entry.transferred = True
        self._set(slot, ImplementationStatus.IMPLEMENTED, self._at(moment), changes)
        insort(self._plan, slot, lo=self._plan_idx, key=lambda s: s.start)

    def _set(
        self, slot: _Slot, status: ImplementationStatus, at: datetime, changes: list[StatusChange]
    ) -> None:
        slot.entry.status = status
        slot.entry.status_at = at
        changes.append(self._change(slot))

    def _at(self, ts: float) -> datetime:
        """`ts` as a datetime, cached: a batch of changes shares one instant."""
        if self._at_cache[0] != ts:
            self._at_cache = (ts, _dt(ts))
        return self._at_cache[1]

    def _change(self, slot: _Slot) -> StatusChange:
        e = slot.entry
        return StatusChange(
            self.spec.site_id, e.post_id, e.entry_id, e.start, e.end, e.status, e.status_at
        )
