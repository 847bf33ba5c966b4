"""The emulated box deviates from its plan the way real ones do: a taper near full and
empty, a derated inverter, a noisy meter — exactly and deterministically."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.cellect.clock import Clock
from receiver.cellect.models import ScheduleEntry
from receiver.emulator.battery import LAND_KWH, BatteryParams, effective_power_kw, integrate
from receiver.emulator.box import Box
from receiver.emulator.state import SiteSpec
from tests.support.emulator_api import open_api

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# 200 kWh, 100 kW both ways, limits 5 % / 95 %, taper over the last 5 points (10 kWh).
SPEC = SiteSpec(1, 1, "Site 1", "DE", 52.5, 13.4, 200.0, 100.0, 100.0, 50.0, taper_pct=5.0)
PARAMS = BatteryParams.of(SPEC)


def test_taper_bound_is_linear_in_the_distance_to_the_limit() -> None:
    """Within the band the power is at most P_rated · x / band; outside it, the demand."""
    assert effective_power_kw(100.0, 80.0, PARAMS) == 80.0
    assert effective_power_kw(PARAMS.min_kwh + 5.0, 80.0, PARAMS) == pytest.approx(50.0)
    assert effective_power_kw(PARAMS.min_kwh + 5.0, 20.0, PARAMS) == 20.0
    assert effective_power_kw(PARAMS.max_kwh - 2.5, -80.0, PARAMS) == pytest.approx(-25.0)
    assert effective_power_kw(PARAMS.max_kwh, -80.0, PARAMS) == 0.0


def test_tapered_discharge_lands_on_the_floor_in_finite_time() -> None:
    """A discharge into the band follows x₀·exp(−t/τ) and ends exactly on the floor."""
    step = integrate(PARAMS.min_kwh + 10.0, 100.0, 7200.0, PARAMS)
    assert step.stored_kwh == PARAMS.min_kwh
    tau_s = 10.0 / (100.0 / SPEC.discharge_efficiency) * 3600.0
    assert step.active_s == pytest.approx(tau_s * math.log(10.0 / LAND_KWH))
    assert step.discharged_ac_kwh == pytest.approx(10.0 * SPEC.discharge_efficiency)


def test_tapered_charge_follows_the_exponential() -> None:
    """Charging at the rated power from the band's edge: x(t) = x₀·exp(−t/τ)."""
    start = PARAMS.max_kwh - 10.0
    step = integrate(start, -100.0, 60.0, PARAMS)
    tau_s = 10.0 / (100.0 * SPEC.charge_efficiency) * 3600.0
    left = 10.0 * math.exp(-60.0 / tau_s)
    assert step.stored_kwh == pytest.approx(PARAMS.max_kwh - left)
    assert step.charged_ac_kwh == pytest.approx((10.0 - left) / SPEC.charge_efficiency)


@given(
    stored=st.floats(10.0, 190.0),
    power=st.floats(-100.0, 100.0).filter(lambda p: abs(p) > 1e-3),
    seconds=st.floats(1.0, 86400.0),
)
def test_taper_conserves_energy_and_the_limits(stored: float, power: float, seconds: float) -> None:
    """Whatever the demand, the stored energy stays within the limits and moves by the AC
    energy through the efficiencies."""
    step = integrate(stored, power, seconds, PARAMS)
    assert PARAMS.min_kwh - 1e-9 <= step.stored_kwh <= PARAMS.max_kwh + 1e-9
    moved = step.charged_ac_kwh * SPEC.charge_efficiency
    moved -= step.discharged_ac_kwh / SPEC.discharge_efficiency
    assert step.stored_kwh - stored == pytest.approx(moved, abs=1e-6)


def _box(spec: SiteSpec = SPEC) -> tuple[Box, Clock]:
    clock = Clock.frozen(T0)
    ids = itertools.count(1)
    box = Box(spec, now=clock.now(), rng=random.Random(5), next_event_id=lambda: next(ids))
    return box, clock


def _entry(start_min: float, end_min: float, power: float) -> ScheduleEntry:
    return ScheduleEntry(
        start_date=T0 + timedelta(minutes=start_min),
        end_date=T0 + timedelta(minutes=end_min),
        ess_power_ac=power,
    )


def test_a_derated_inverter_delivers_its_factor_of_the_plan() -> None:
    """At factor 0.8 a 50 kW hour exports 40 kWh; restored, the next hour exports 50."""
    box, clock = _box(SiteSpec(1, 1, "Site 1", "DE", 52.5, 13.4, 200.0, 100.0, 100.0, 80.0))
    box.store([_entry(10, 70, 50.0), _entry(70, 130, 50.0)], post_id=1, now=clock.now())
    box.set_inverter_factor(0.8, now=clock.now())
    box.advance_to(clock.advance(10 * 60 + 30))
    assert box.power_kw == 40.0
    box.advance_to(clock.advance(3600 - 30))
    assert box.discharged_ac_kwh == pytest.approx(40.0)
    box.set_inverter_factor(1.0, now=clock.now())
    box.advance_to(clock.advance(3600))
    assert box.discharged_ac_kwh == pytest.approx(90.0)


def test_meter_noise_is_off_by_default_and_seeded() -> None:
    """Readings are exact without noise; with it they scatter around the true power, the
    same for the same seed."""
    readings = []
    for _ in range(2):
        box, clock = _box()
        box.store([_entry(10, 70, 50.0)], post_id=1, now=clock.now())
        box.advance_to(clock.advance(15 * 60))
        assert box.measured_power_kw() == 50.0
        box.set_meter_noise(0.01)
        readings.append([box.measured_power_kw() for _ in range(200)])
    assert readings[0] == readings[1]
    mean = sum(readings[0]) / 200
    assert mean == pytest.approx(50.0, rel=0.005)
    assert len(set(readings[0])) > 100


@pytest.mark.anyio
async def test_control_api_derates_restores_and_sets_the_meter() -> None:
    """POST /inverter sets the factor, DELETE restores 1; /meter sets the noise; bad
    values are 400 naming the field."""
    async with open_api() as api:
        derated = await api.http.post("/_emulator/sites/1/inverter", json={"factor": 0.8})
        assert (derated.status_code, derated.json()["inverterFactor"]) == (200, 0.8)
        assert api.emulator.boxes[1].inverter_factor == 0.8
        restored = await api.http.delete("/_emulator/sites/1/inverter")
        assert restored.json()["inverterFactor"] == 1.0
        meter = await api.http.post("/_emulator/sites/1/meter", json={"noise": 0.02})
        assert meter.json()["meterNoise"] == 0.02
        for path, body, field in (
            ("/_emulator/sites/1/inverter", {"factor": 1.5}, "factor"),
            ("/_emulator/sites/1/inverter", {}, "factor"),
            ("/_emulator/sites/1/meter", {"noise": -1}, "noise"),
            ("/_emulator/sites/99/inverter", {"factor": 0.5}, "siteId"),
        ):
            answer = await api.http.post(path, json=body)
            assert answer.status_code in (400, 404)
            assert answer.json()["field"] == field
