"""The battery's physics: pure functions that integrate a constant AC power demand over time.

Sign convention (docs/decisions.md): positive power discharges (export), negative charges.
Charging at P < 0 for dt stores |P|·η_c·dt; discharging at P > 0 for dt draws
P/η_d·dt from storage. The stored energy never leaves [min, max].

Taper (docs/emulator.md, "Battery physics"): within `taper_kwh` of a limit the battery
management system lets less power through, linearly in the distance to that limit:
|P| ≤ P_rated · x / taper, where x is the stored energy left to the limit (to max when
charging, to min when discharging) and P_rated the site's rated power that way. A
demand above that bound runs at the bound, so x shrinks exponentially,
x(t) = x₀ · exp(−t/τ) with τ = taper / (k · P_rated) hours (k = η_c charging, 1/η_d
discharging), as a real cell's current tapers at the end of a charge. Once x is below
`LAND_KWH` the battery is at the limit and the power 0 — so a taper ends in finite
time, on the limit exactly. `taper_kwh` 0 is no taper: the power flows in full until
the limit and is curtailed to 0 there. Energies in kWh, powers in kW, durations in
seconds; the box keeps its state in kWh and shows percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from receiver.emulator.state import SiteSpec

_SECONDS_PER_HOUR = 3600.0
LAND_KWH = 1e-4  # within 0.1 Wh of a limit under taper: at the limit


@dataclass(frozen=True, slots=True)
class BatteryParams:
    """What integration needs of a site: energy limits (kWh), efficiencies and the taper."""

    capacity_kwh: float
    min_kwh: float
    max_kwh: float
    charge_efficiency: float
    discharge_efficiency: float
    taper_kwh: float = 0.0
    rated_charge_kw: float = math.inf
    rated_discharge_kw: float = math.inf

    @classmethod
    def of(cls, spec: SiteSpec) -> BatteryParams:
        capacity = spec.capacity_kwh
        return cls(
            capacity_kwh=capacity,
            min_kwh=capacity * spec.min_soc_pct / 100.0,
            max_kwh=capacity * spec.max_soc_pct / 100.0,
            charge_efficiency=spec.charge_efficiency,
            discharge_efficiency=spec.discharge_efficiency,
            taper_kwh=capacity * spec.taper_pct / 100.0,
            rated_charge_kw=spec.rated_charge_kw,
            rated_discharge_kw=spec.rated_discharge_kw,
        )

    def clamp(self, stored_kwh: float) -> float:
        return min(max(stored_kwh, self.min_kwh), self.max_kwh)


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one interval: new stored energy and the AC energy that flowed."""

    stored_kwh: float
    charged_ac_kwh: float  # drawn from the grid (P < 0), as a positive amount
    discharged_ac_kwh: float  # exported (P > 0)
    active_s: float  # how long the power actually flowed before a limit stopped it


def storage_rate_kw(power_kw: float, params: BatteryParams) -> float:
    """Rate of change of the stored energy (kWh per hour) while the AC power is `power_kw`."""
    if power_kw < 0:
        return -power_kw * params.charge_efficiency
    return -power_kw / params.discharge_efficiency


def _headroom(stored_kwh: float, power_kw: float, params: BatteryParams) -> float:
    """x: the stored energy left to the limit `power_kw` drives towards (kWh)."""
    if power_kw < 0:
        return max(params.max_kwh - stored_kwh, 0.0)
    return max(stored_kwh - params.min_kwh, 0.0)


def _rated(power_kw: float, params: BatteryParams) -> float:
    return params.rated_charge_kw if power_kw < 0 else params.rated_discharge_kw


def effective_power_kw(stored_kwh: float, power_kw: float, params: BatteryParams) -> float:
    """The AC power that can actually flow now: 0 at a limit, tapered near one."""
    if power_kw == 0.0:
        return 0.0
    x = _headroom(stored_kwh, power_kw, params)
    if x <= 0.0 or (params.taper_kwh > 0 and x <= LAND_KWH):
        return 0.0
    if params.taper_kwh > 0 and x < params.taper_kwh:
        bound = _rated(power_kw, params) * x / params.taper_kwh
        if abs(power_kw) > bound:
            return math.copysign(bound, power_kw)
    return power_kw


def integrate(stored_kwh: float, power_kw: float, dt_s: float, params: BatteryParams) -> Step:
    """Hold a demand of `power_kw` for `dt_s` seconds from `stored_kwh`, curtailed at the
    limits and tapered near them."""
    power = effective_power_kw(stored_kwh, power_kw, params)
    if power == 0.0 or dt_s <= 0:
        return Step(stored_kwh, 0.0, 0.0, 0.0)
    if params.taper_kwh > 0:
        return _tapered(stored_kwh, power_kw, dt_s, params)
    rate = storage_rate_kw(power, params) / _SECONDS_PER_HOUR  # kWh per second
    if rate == 0.0:  # a power so small (subnormal) that it cannot move the stored energy
        return Step(stored_kwh, 0.0, 0.0, 0.0)
    limit = params.max_kwh if rate > 0 else params.min_kwh
    to_limit_s = max((limit - stored_kwh) / rate, 0.0)
    if to_limit_s <= dt_s:
        # Land exactly on the limit so that later comparisons see a full/empty battery.
        active_s, stored = to_limit_s, limit
    else:
        active_s, stored = dt_s, stored_kwh + rate * dt_s
    return _step(stored, power, abs(power) * active_s / _SECONDS_PER_HOUR, active_s)


def _step(stored: float, power: float, ac_kwh: float, active_s: float) -> Step:
    if power < 0:
        return Step(stored, ac_kwh, 0.0, active_s)
    return Step(stored, 0.0, ac_kwh, active_s)


def _tapered(stored_kwh: float, demand_kw: float, dt_s: float, params: BatteryParams) -> Step:
    """`integrate` with a taper: the demand in full while x is above the point where the
    bound meets it, then the exponential approach, landing on the limit below LAND_KWH."""
    k = params.charge_efficiency if demand_kw < 0 else 1.0 / params.discharge_efficiency
    rated, taper = _rated(demand_kw, params), params.taper_kwh
    x0 = _headroom(stored_kwh, demand_kw, params)
    magnitude = abs(demand_kw)
    x_meet = min(taper * magnitude / rated, taper)  # below this the bound rules
    ac_kwh, elapsed, x = 0.0, 0.0, x0
    if x > x_meet:  # the full demand, until the bound meets it
        full_s = (x - x_meet) / (k * magnitude) * _SECONDS_PER_HOUR
        run_s = min(full_s, dt_s)
        x -= k * magnitude * run_s / _SECONDS_PER_HOUR
        ac_kwh, elapsed = magnitude * run_s / _SECONDS_PER_HOUR, run_s
        if full_s >= dt_s:
            return _step(_at(x, demand_kw, params), demand_kw, ac_kwh, elapsed)
        x = x_meet
    tau_s = taper / (k * rated) * _SECONDS_PER_HOUR
    left = dt_s - elapsed
    land_s = tau_s * math.log(x / LAND_KWH) if x > LAND_KWH else 0.0
    if land_s <= left:
        ac_kwh += x / k
        return _step(_at(0.0, demand_kw, params), demand_kw, ac_kwh, elapsed + land_s)
    x_end = x * math.exp(-left / tau_s)
    ac_kwh += (x - x_end) / k
    return _step(_at(x_end, demand_kw, params), demand_kw, ac_kwh, dt_s)


def _at(x: float, power_kw: float, params: BatteryParams) -> float:
    """The stored energy x away from the limit `power_kw` drives towards."""
    return params.max_kwh - x if power_kw < 0 else params.min_kwh + x
