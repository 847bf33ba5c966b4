"""The state-of-charge trajectory of a site's plan: will the battery hold it?

From a site's state of charge at a moment (`start`: when it was measured), its capacity,
its rated powers and its planned entries (ExAnte: constant AC power over [start, end),
positive = discharge), forecast the stored energy at every entry boundary, its lowest and
highest point over the plan, and the first moment the plan leaves the usable range.

Physics — the same conventions as the emulated battery (receiver/emulator/battery.py):

- Usable range: `soc_min` … `soc_max` of the installed capacity (`Physics`, settings
  `CELLECT_PLAN_SOC_MIN` / `CELLECT_PLAN_SOC_MAX`, 0.05 / 0.95: the limits at which the
  Cellect Box — and the emulator — curtails a charge or a discharge).
- Efficiency: a round trip `round_trip_efficiency` (0.92) split evenly, η_c = η_d = √0.92.
  Charging at P < 0 for dt stores |P|·η_c·dt; discharging at P > 0 draws P/η_d·dt.
- A power beyond the site's rating is clamped to it (the vendor refuses such a post
  anyway); gaps between entries are 0 kW; entries ended before `start` are ignored, the
  one running at `start` counts from `start`. Entries are taken in start order and must
  not overlap (a site's planned slots never do).

The breach: the first moment an entry pushes the battery past a limit — a discharge
while the stored energy is at (or below) the minimum, or a charge at (or above) the
maximum: where the box stops delivering. Its entry is "the first entry that cannot be
delivered". The **shortfall** (kWh, AC side) is what the plan asks for from that entry
to the end of the plan and a battery that stops at its limits cannot deliver:
Σ over that entry and every later one of (|P|·dt − the AC energy that flows when the
power is curtailed to 0 at a limit, as the box does). A later charge that refills the
battery lets later discharges flow again, so the shortfall is not simply "the rest of
the plan". Before the breach nothing is curtailed, so this is also Σ over the whole plan.

`soc_min` / `soc_max` of a `Trajectory` are the plan's own lowest and highest SoC (the
forecast without curtailment, at the start and at every entry end — SoC is linear within
an entry): below 0.05 or above 0.95, they say by how much the plan overshoots.

Two implementations that give the same answers: `forecast` walks one site's entries one
by one (the reference; cheap for one site), `forecast_many` computes many sites at once
with numpy, entry by entry over all sites together (bench/trajectory.py: 10,000 sites ×
192 entries).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

SECONDS_PER_HOUR = 3600.0
# A plan that reaches a limit exactly is not a breach: only past it by more than this
# share of the capacity (float sums of a hundred entries differ in the last digits).
TOLERANCE = 1e-9

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Physics:
    """What the monitor assumes of every battery (settings `CELLECT_PLAN_SOC_MIN`,
    `CELLECT_PLAN_SOC_MAX`, `CELLECT_ROUND_TRIP_EFFICIENCY`)."""

    soc_min: float = 0.05
    soc_max: float = 0.95
    round_trip_efficiency: float = 0.92

    @property
    def charge_efficiency(self) -> float:
        return math.sqrt(self.round_trip_efficiency)

    @property
    def discharge_efficiency(self) -> float:
        return math.sqrt(self.round_trip_efficiency)


@dataclass(frozen=True, slots=True)
class Battery:
    """A site's state and ratings as the vendor reports them (ratio, kWh, kW)."""

    soc_ratio: float
    capacity_kwh: float
    rated_charge_kw: float
    rated_discharge_kw: float


class Entry(NamedTuple):
    """One planned entry: Unix seconds, kW (positive = discharge), as posted."""

    start: float
    end: float
    power_kw: float


@dataclass(frozen=True, slots=True)
class Breach:
    """Where the plan first leaves the usable range."""

    at: float  # Unix seconds
    entry: Entry  # the entry during which it happens, as planned
    limit: str  # "empty" (a discharge at the minimum) or "full" (a charge at the maximum)
    shortfall_kwh: float


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A site's plan forecast from `start`."""

    start: float
    soc_min: float  # ratio, lowest of the plan (may be below the usable range, even < 0)
    soc_max: float
    breach: Breach | None
    entries: int  # entries counted (those not ended at `start`)
    # (Unix s, SoC ratio) at the start and at every counted entry's end (`forecast` only).
    points: tuple[tuple[float, float], ...] = ()


def _ahead(entries: Iterable[Entry], start: float) -> list[Entry]:
    return sorted(e for e in entries if e.end > start and e.end > e.start)


def forecast(
    battery: Battery, entries: Iterable[Entry], start: float, physics: Physics
) -> Trajectory | None:
    """The site's trajectory from `start`, entry by entry (None: no capacity to judge)."""
    capacity = battery.capacity_kwh
    if not capacity > 0:
        return None
    eta_c, eta_d = physics.charge_efficiency, physics.discharge_efficiency
    lo, hi = physics.soc_min * capacity, physics.soc_max * capacity
    tol = TOLERANCE * capacity
    stored = curtailed = battery.soc_ratio * capacity
    low = high = stored
    points = [(start, stored / capacity)]
    breach: tuple[float, Entry, str] | None = None
    shortfall = 0.0
    counted = _ahead(entries, start)
    for entry in counted:
        begin = max(entry.start, start)
        hours = (entry.end - begin) / SECONDS_PER_HOUR
        power = min(max(entry.power_kw, -battery.rated_charge_kw), battery.rated_discharge_kw)
        rate = -power * eta_c if power < 0 else -power / eta_d  # stored kWh per hour
        after = stored + rate * hours
        if breach is None:
            if power > 0 and after < lo - tol:
                at = begin + max(0.0, (stored - lo) / -rate) * SECONDS_PER_HOUR
                breach = (at, entry, "empty")
            elif power < 0 and after > hi + tol:
                at = begin + max(0.0, (hi - stored) / rate) * SECONDS_PER_HOUR
                breach = (at, entry, "full")
        # The battery as the box runs it: the power curtailed to 0 at a limit.
        target = curtailed + rate * hours
        moved = min(max(target, min(curtailed, lo)), max(curtailed, hi)) - curtailed
        delivered = -moved * eta_d if power > 0 else moved / eta_c
        if breach is not None:
            shortfall += abs(power) * hours - delivered
        curtailed += moved
        stored = after
        low, high = min(low, stored), max(high, stored)
        points.append((entry.end, stored / capacity))
    found = None
    if breach is not None:
        found = Breach(breach[0], breach[1], breach[2], max(0.0, shortfall))
    return Trajectory(start, low / capacity, high / capacity, found, len(counted), tuple(points))


def entry_array(entries: Iterable[Entry]) -> Floats:
    """A site's entries as `forecast_many` takes them: rows (start, end, kW), by start.

    Built once per plan (a site's plan changes with its ExAnte poll), so that the
    recomputation for a new SoC — every site at once after a portfolio poll — starts
    from arrays rather than from a million Python tuples."""
    rows = sorted(entries)
    if not rows:
        return np.zeros((0, 3))
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Plan:
    """One site's input to `forecast_many`: `entries` from `entry_array`."""

    battery: Battery
    entries: Floats
    start: float


def forecast_many(plans: Sequence[Plan], physics: Physics) -> list[Trajectory | None]:
    """`forecast` of every plan (without `points`), computed for all of them at once.

    The entries of all sites form one matrix (a row per site, padded with empty entries),
    so each step is one numpy operation over every site; only the curtailed battery
    (the shortfall) needs a walk, column by column, for the sites that breach. Entries
    ended at a plan's start take no time there, so they change nothing."""
    results: list[Trajectory | None] = [None] * len(plans)
    rows = [i for i, p in enumerate(plans) if p.battery.capacity_kwh > 0]
    if not rows:
        return results
    arrays = [plans[i].entries for i in rows]
    n = len(rows)
    lengths = np.array([len(a) for a in arrays], dtype=np.intp)
    width = max(1, int(lengths.max()))
    t0 = np.array([plans[i].start for i in rows])
    batteries = [plans[i].battery for i in rows]
    capacity = np.array([b.capacity_kwh for b in batteries])
    charge = np.array([b.rated_charge_kw for b in batteries])
    discharge = np.array([b.rated_discharge_kw for b in batteries])
    e0 = np.array([b.soc_ratio for b in batteries]) * capacity
    # Padding: empty entries at the start (no time, no power) change nothing.
    grid = np.zeros((n, width, 3))
    grid[:, :, 0] = grid[:, :, 1] = t0[:, None]
    if lengths.sum():
        offsets = np.cumsum(lengths) - lengths
        site = np.repeat(np.arange(n), lengths)
        column = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
        grid[site, column] = np.concatenate(arrays)
    begin = np.maximum(grid[:, :, 0], t0[:, None])
    end = grid[:, :, 1]
    hours = np.maximum(end - begin, 0.0) / SECONDS_PER_HOUR
    counted = ((end > t0[:, None]) & (end > grid[:, :, 0])).sum(axis=1).tolist()
    power = np.minimum(np.maximum(grid[:, :, 2], -charge[:, None]), discharge[:, None])
    eta_c, eta_d = physics.charge_efficiency, physics.discharge_efficiency
    rate = np.where(power < 0, -power * eta_c, -power / eta_d)
    after = e0[:, None] + np.cumsum(rate * hours, axis=1)
    before = np.concatenate([e0[:, None], after[:, :-1]], axis=1)
    lo, hi = physics.soc_min * capacity, physics.soc_max * capacity
    tol = TOLERANCE * capacity
    low = np.minimum(e0, after.min(axis=1)) / capacity
    high = np.maximum(e0, after.max(axis=1)) / capacity
    moving = hours > 0
    empty = moving & (power > 0) & (after < (lo - tol)[:, None])
    full = moving & (power < 0) & (after > (hi + tol)[:, None])
    crossing = empty | full
    breaching = np.flatnonzero(crossing.any(axis=1))
    first = crossing[breaching].argmax(axis=1)
    shortfall = _shortfall(
        e0[breaching], lo[breaching], hi[breaching], rate[breaching] * hours[breaching],
        power[breaching], hours[breaching], first, eta_c, eta_d,
    )  # fmt: skip
    breaches: dict[int, Breach] = {}
    for k, row in enumerate(breaching.tolist()):
        j = int(first[k])
        r, s0 = float(rate[row, j]), float(before[row, j])
        if empty[row, j]:
            limit, wait_h = "empty", max(0.0, (s0 - float(lo[row])) / -r)
        else:
            limit, wait_h = "full", max(0.0, (float(hi[row]) - s0) / r)
        at = float(begin[row, j]) + wait_h * SECONDS_PER_HOUR
        start, stop, kw = grid[row, j].tolist()
        breaches[row] = Breach(at, Entry(start, stop, kw), limit, max(0.0, float(shortfall[k])))
    low_l, high_l = low.tolist(), high.tolist()
    for row, i in enumerate(rows):
        results[i] = Trajectory(
            plans[i].start, low_l[row], high_l[row], breaches.get(row), counted[row]
        )
    return results


def _shortfall(
    e0: Floats,
    lo: Floats,
    hi: Floats,
    delta: Floats,
    power: Floats,
    hours: Floats,
    first: npt.NDArray[np.intp],
    eta_c: float,
    eta_d: float,
) -> Floats:
    """Per site, the AC energy not delivered from its entry `first` on, by a battery
    whose power is curtailed to 0 at its limits (entry by entry over all sites)."""
    total = np.zeros(len(e0))
    stored = e0.copy()
    for j in range(delta.shape[1]):
        target = stored + delta[:, j]
        new = np.minimum(np.maximum(target, np.minimum(stored, lo)), np.maximum(stored, hi))
        moved = new - stored
        delivered = np.where(power[:, j] > 0, -moved * eta_d, moved / eta_c)
        missing = np.abs(power[:, j]) * hours[:, j] - delivered
        total += np.where(first <= j, missing, 0.0)
        stored = new
    return total
