"""The battery's pure physics: efficiencies, curtailment at the limits, exact landing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from receiver.emulator.battery import BatteryParams, effective_power_kw, integrate
from receiver.emulator.state import SiteSpec

SPEC = SiteSpec(1, 1, "Site 1", "DE", 52.5, 13.4, 200.0, 100.0, 100.0, 50.0, 10.0, 90.0, 0.9, 0.8)
PARAMS = BatteryParams.of(SPEC)


def test_params_convert_percent_limits_to_kwh() -> None:
    """SoC limits in percent become stored-energy limits in kWh."""
    assert (PARAMS.min_kwh, PARAMS.max_kwh) == (20.0, 180.0)


def test_charging_stores_power_times_charge_efficiency() -> None:
    """Charging at P < 0 for one hour stores |P|·η_c and draws |P| from the grid."""
    step = integrate(100.0, -50.0, 3600.0, PARAMS)
    assert (step.stored_kwh, step.charged_ac_kwh, step.discharged_ac_kwh) == (145.0, 50.0, 0.0)


def test_discharging_draws_power_over_discharge_efficiency() -> None:
    """Discharging at P > 0 for one hour draws P/η_d from storage and exports P."""
    step = integrate(100.0, 40.0, 3600.0, PARAMS)
    assert (step.stored_kwh, step.charged_ac_kwh, step.discharged_ac_kwh) == (50.0, 0.0, 40.0)


def test_charge_stops_exactly_at_max() -> None:
    """A charge that would overshoot lands on max and flows only until it gets there."""
    step = integrate(171.0, -100.0, 3600.0, PARAMS)  # 9 kWh to go at 90 kWh/h: 360 s
    assert step.stored_kwh == PARAMS.max_kwh
    assert abs(step.active_s - 360.0) < 1e-9
    assert abs(step.charged_ac_kwh - 10.0) < 1e-9


def test_discharge_stops_exactly_at_min() -> None:
    """A discharge that would undershoot lands on min and exports only what was there."""
    step = integrate(28.0, 40.0, 3600.0, PARAMS)  # 8 kWh stored at 50 kWh/h: 576 s
    assert step.stored_kwh == PARAMS.min_kwh
    assert abs(step.discharged_ac_kwh - 6.4) < 1e-9


def test_power_is_curtailed_at_the_limits() -> None:
    """A full battery cannot charge and an empty one cannot discharge; the other way works."""
    assert effective_power_kw(PARAMS.max_kwh, -10.0, PARAMS) == 0.0
    assert effective_power_kw(PARAMS.max_kwh, 10.0, PARAMS) == 10.0
    assert effective_power_kw(PARAMS.min_kwh, 10.0, PARAMS) == 0.0
    assert effective_power_kw(PARAMS.min_kwh, -10.0, PARAMS) == -10.0


def test_standby_changes_nothing() -> None:
    """At 0 kW nothing flows and the stored energy stays."""
    step = integrate(77.0, 0.0, 86400.0, PARAMS)
    assert (step.stored_kwh, step.active_s) == (77.0, 0.0)


def test_vanishing_power_moves_nothing() -> None:
    """A subnormal power (found by hypothesis) leaves the battery as it is, without error."""
    step = integrate(100.0, 5e-324, 3600.0, PARAMS)
    assert (step.stored_kwh, step.charged_ac_kwh, step.discharged_ac_kwh) == (100.0, 0.0, 0.0)


@given(
    stored=st.floats(min_value=20.0, max_value=180.0),
    power=st.floats(min_value=-100.0, max_value=100.0),
    dt=st.floats(min_value=0.0, max_value=200_000.0),
)
def test_integration_stays_within_limits_and_balances(
    stored: float, power: float, dt: float
) -> None:
    """Any step stays within [min, max] and its ΔE equals η_c·in − out/η_d."""
    step = integrate(stored, power, dt, PARAMS)
    assert PARAMS.min_kwh <= step.stored_kwh <= PARAMS.max_kwh
    expected = step.charged_ac_kwh * 0.9 - step.discharged_ac_kwh / 0.8
    assert abs((step.stored_kwh - stored) - expected) < 1e-6
