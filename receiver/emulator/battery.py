"""The battery's physics: pure functions that integrate a constant AC power over time.

Sign convention (docs/decisions.md): positive power discharges (export), negative charges.
Charging at P < 0 for dt stores |P|·η_c·dt; discharging at P > 0 for dt draws
P/η_d·dt from storage. The stored energy never leaves [min, max]: when it reaches a
limit the power is curtailed to 0 for the rest of the interval (a full battery cannot
keep charging, an empty one cannot keep discharging). Energies in kWh, powers in kW,
durations in seconds; the box keeps its state in kWh and shows percent.
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.emulator.state import SiteSpec

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class BatteryParams:
    """What integration needs of a site: energy limits (kWh) and efficiencies."""

    capacity_kwh: float
    min_kwh: float
    max_kwh: float
    charge_efficiency: float
    discharge_efficiency: float

    @classmethod
    def of(cls, spec: SiteSpec) -> BatteryParams:
        capacity = spec.capacity_kwh
        return cls(
            capacity_kwh=capacity,
            min_kwh=capacity * spec.min_soc_pct / 100.0,
            max_kwh=capacity * spec.max_soc_pct / 100.0,
            charge_efficiency=spec.charge_efficiency,
            discharge_efficiency=spec.discharge_efficiency,
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


def effective_power_kw(stored_kwh: float, power_kw: float, params: BatteryParams) -> float:
    """The AC power that can actually flow now: 0 when it would push past a limit."""
    if power_kw < 0 and stored_kwh >= params.max_kwh:
        return 0.0
    if power_kw > 0 and stored_kwh <= params.min_kwh:
        return 0.0
    return power_kw


def integrate(stored_kwh: float, power_kw: float, dt_s: float, params: BatteryParams) -> Step:
    """Hold `power_kw` for `dt_s` seconds from `stored_kwh`, curtailing at the limits."""
    power = effective_power_kw(stored_kwh, power_kw, params)
    if power == 0.0 or dt_s <= 0:
        return Step(stored_kwh, 0.0, 0.0, 0.0)
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
    energy = abs(power) * active_s / _SECONDS_PER_HOUR
    if power < 0:
        return Step(stored, energy, 0.0, active_s)
    return Step(stored, 0.0, energy, active_s)
