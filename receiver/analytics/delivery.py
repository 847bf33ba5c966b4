"""Delivered against planned: the energy a site delivered during a schedule entry.

Sign convention (docs/decisions.md): positive power discharges (export), negative charges;
energies carry the same sign (kWh). An entry's **planned** energy is its power times its
duration. Its **delivered** energy is estimated from what the monitor measured:

- **power** (preferred): the power samples (the PortfolioOverview's `essPower`, one per
  poll) inside the entry's window `[start, end)`, integrated by the nearest-sample rule:
  each sample stands for the time closer to it than to its neighbours, the first from the
  start and the last up to the end. Samples outside the window are never used: the power
  steps at an entry's boundaries (a sample 30 s before the start shows the previous
  entry's power), so interpolating across a boundary would smear that step into both.
  For power constant over the entry it is exact whatever the sampling; where the power
  varies inside (a taper) its error shrinks with the poll interval.
- **soc** (fallback): with too few samples — fewer than `MIN_SAMPLES` inside, or a gap
  (between two samples, or from a boundary to the nearest one) longer than `max_gap_s` —
  the change of the state of charge across the entry times the capacity, turned into AC
  energy through an assumed efficiency η each way: a stored energy fall ΔE delivered
  ΔE·η, a rise drew ΔE/η. The state of charge at each boundary is interpolated between
  the samples around it (or the one within `max_gap_s` on one side).
- **none**: neither is possible (the box was not reporting): delivered is unknown.

The **tracking error** over some entries is Σ|delivered − planned| / Σ|planned|: the
share of the asked-for energy the site missed (or overshot), entry by entry, so that a
site charging when told to discharge is not excused by matching magnitudes. An inverter
derated to factor f delivers f·planned in every entry: its error is 1 − f.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

SECONDS_PER_HOUR = 3600.0
MIN_SAMPLES = 2  # power samples an entry needs inside it for the power method
ASSUMED_EFFICIENCY = 0.95  # each way, for the SoC fallback (typical Li-ion, and the emulator's)


class Method(StrEnum):
    POWER = "power"
    SOC = "soc"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement of a site: when, its AC power (kW, + discharge), its SoC (%)."""

    at: datetime
    power_kw: float
    soc_pct: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """An entry's planned and delivered energy (kWh, signed), and how it was estimated."""

    planned_kwh: float
    delivered_kwh: float | None
    method: Method
    samples: int  # power samples inside the entry

    @property
    def deviation_kwh(self) -> float | None:
        """Delivered − planned (kWh); None when delivered is unknown."""
        if self.delivered_kwh is None:
            return None
        return self.delivered_kwh - self.planned_kwh


def planned_kwh(power_kw: float, start: datetime, end: datetime) -> float:
    """The entry's planned energy: its power over its duration (kWh, signed)."""
    return power_kw * (end - start).total_seconds() / SECONDS_PER_HOUR


def estimate(
    samples: Sequence[Sample],
    *,
    start: datetime,
    end: datetime,
    power_kw: float,
    max_gap_s: float,
    capacity_kwh: float | None,
    efficiency: float = ASSUMED_EFFICIENCY,
) -> Delivery:
    """The entry `[start, end)` planned at `power_kw`, against `samples` (sorted by time,
    from around the entry: a little before its start to a little after its end)."""
    planned = planned_kwh(power_kw, start, end)
    times = [s.at for s in samples]
    lo, hi = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
    inside = samples[lo:hi]
    if len(inside) >= MIN_SAMPLES and _largest_gap_s(inside, start, end) <= max_gap_s:
        return Delivery(planned, _integrate(inside, start, end), Method.POWER, len(inside))
    soc_start = _soc_at(samples, times, start, max_gap_s)
    soc_end = _soc_at(samples, times, end, max_gap_s)
    if soc_start is None or soc_end is None or not capacity_kwh:
        return Delivery(planned, None, Method.NONE, len(inside))
    stored = (soc_end - soc_start) / 100.0 * capacity_kwh  # kWh, + charged
    delivered = -stored * efficiency if stored < 0 else -stored / efficiency
    return Delivery(planned, delivered, Method.SOC, len(inside))


def _largest_gap_s(inside: Sequence[Sample], start: datetime, end: datetime) -> float:
    moments = [start, *(s.at for s in inside), end]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(moments))


def _integrate(inside: Sequence[Sample], start: datetime, end: datetime) -> float:
    """The nearest-sample rule over `[start, end)` (kWh)."""
    energy = 0.0
    left = start
    for i, sample in enumerate(inside):
        nxt = inside[i + 1].at if i + 1 < len(inside) else None
        right = end if nxt is None else sample.at + (nxt - sample.at) / 2
        energy += sample.power_kw * (right - left).total_seconds()
        left = right
    return energy / SECONDS_PER_HOUR


def _soc_at(
    samples: Sequence[Sample], times: Sequence[datetime], moment: datetime, max_gap_s: float
) -> float | None:
    """The SoC at `moment`: interpolated between the samples around it, or the one within
    `max_gap_s` on one side; None when no sample is that near."""
    i = bisect.bisect_left(times, moment)
    after = samples[i] if i < len(samples) else None
    before = samples[i - 1] if i > 0 else None
    near_after = after is not None and (after.at - moment).total_seconds() <= max_gap_s
    near_before = before is not None and (moment - before.at).total_seconds() <= max_gap_s
    if after is not None and before is not None and near_after and near_before:
        span = (after.at - before.at).total_seconds()
        share = (moment - before.at).total_seconds() / span if span > 0 else 0.0
        return before.soc_pct + (after.soc_pct - before.soc_pct) * share
    if after is not None and near_after:
        return after.soc_pct
    if before is not None and near_before:
        return before.soc_pct
    return None


def tracking_error(entries: Iterable[tuple[float, float | None]]) -> float | None:
    """Σ|delivered − planned| / Σ|planned| over `(planned_kwh, delivered_kwh)` pairs, those
    with delivered unknown left out; None when nothing was planned (Σ|planned| = 0)."""
    missed = asked = 0.0
    for planned, delivered in entries:
        if delivered is None:
            continue
        missed += abs(delivered - planned)
        asked += abs(planned)
    return missed / asked if asked > 0 else None
