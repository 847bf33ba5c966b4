"""The plan's SoC trajectory: hand-computed cases, the batch against the per-entry
reference, and the breach and shortfall against the emulated battery's own physics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.analytics.trajectory import (
    Battery,
    Entry,
    Physics,
    Plan,
    Trajectory,
    entry_array,
    forecast,
    forecast_many,
)
from receiver.emulator.battery import BatteryParams, integrate

PHYSICS = Physics()
ETA = math.sqrt(0.92)
Q = 900.0  # a quarter-hour, s


def _quarters(powers: list[float], first: float = 0.0) -> list[Entry]:
    return [Entry(first + i * Q, first + (i + 1) * Q, p) for i, p in enumerate(powers)]


def _one(battery: Battery, entries: list[Entry], start: float = 0.0) -> Trajectory:
    found = forecast(battery, entries, start, PHYSICS)
    assert found is not None
    return found


BATTERY = Battery(0.5, 100.0, 50.0, 50.0)


def test_a_discharge_that_empties_the_battery_breaches_at_the_minute_computed_by_hand() -> None:
    """27·√0.92 kW draws 27 kWh/h: the 45 kWh above 5 % last 100 minutes, inside the 7th
    quarter; the last 20 minutes (P·⅓ h) cannot be delivered; the plan's lowest SoC is
    50 − 54 = −4 %."""
    power = 27 * ETA
    found = _one(BATTERY, _quarters([power] * 8))
    assert found.breach is not None
    assert found.breach.at == pytest.approx(6000.0)
    assert found.breach.entry == Entry(5400.0, 6300.0, power)
    assert found.breach.limit == "empty"
    assert found.breach.shortfall_kwh == pytest.approx(power / 3)
    assert found.soc_min == pytest.approx(-0.04)
    assert found.soc_max == 0.5
    assert found.points[0] == (0.0, 0.5)
    assert found.points[-1][1] == pytest.approx(-0.04)
    assert len(found.points) == 9


def test_a_charge_that_fills_the_battery_breaches_at_the_maximum() -> None:
    """Charging 40 kW stores 40·√0.92 kWh/h: 45 kWh to 95 % take 45/(40·√0.92) h."""
    found = _one(BATTERY, _quarters([-40.0] * 8))
    assert found.breach is not None
    assert found.breach.limit == "full"
    assert found.breach.at == pytest.approx(45 / (40 * ETA) * 3600)
    assert found.soc_max == pytest.approx(0.5 + 80 * ETA / 100)


def test_a_later_charge_lets_later_discharges_count_as_delivered() -> None:
    """Empty at 5 % after the first hour (45 kWh drawn), 30 minutes short; a charge of
    half an hour refills 20·√0.92·½ kWh, which the last discharge then delivers: the
    shortfall is only what could not flow."""
    draw = 45 * ETA  # kW: 45 kWh out of storage in an hour
    plan = _quarters([draw] * 6 + [-40.0] * 2 + [draw] * 2)
    found = _one(BATTERY, plan)
    assert found.breach is not None
    assert found.breach.at == pytest.approx(3600.0)
    refilled = 40 * ETA * 0.5  # kWh stored by the charge
    delivered_after = refilled * ETA  # AC out of it in the last half hour
    expected = draw * 0.5 + (draw * 0.5 - delivered_after)
    assert found.breach.shortfall_kwh == pytest.approx(expected)


def test_powers_beyond_the_rating_are_clamped_gaps_and_past_entries_count_nothing() -> None:
    """A 500 kW entry counts as the 50 kW rating; a gap is standby; an entry that ended
    before the start is ignored and the running one counts from the start."""
    past = Entry(-2 * Q, -Q, 50.0)
    running = Entry(-Q, Q, 20.0)  # counts 15 minutes from the start
    later = Entry(2 * Q, 3 * Q, 500.0)  # after a gap; clamped to 50 kW
    found = _one(BATTERY, [later, past, running])
    stored = 50 - (20 * 0.25 + 50 * 0.25) / ETA
    assert found.entries == 2
    assert found.soc_min == pytest.approx(stored / 100)
    assert found.breach is None


def test_a_plan_that_reaches_a_limit_exactly_is_not_a_breach() -> None:
    """45 kWh drawn in an hour in four entries ends at 5 % exactly: no breach."""
    found = _one(BATTERY, _quarters([45 * ETA] * 4))
    assert found.breach is None
    assert found.soc_min == pytest.approx(0.05)


def test_a_battery_below_its_minimum_breaches_at_once_when_discharged_not_when_charged() -> None:
    """At 3 % (below 5 %) a discharge cannot flow from its very start; a charge can."""
    low = Battery(0.03, 100.0, 50.0, 50.0)
    assert _one(low, _quarters([10.0]), start=0.0).breach is not None
    found = _one(low, _quarters([-10.0]))
    assert found.breach is None


def test_no_capacity_no_forecast() -> None:
    """A site reporting 0 kWh cannot be judged."""
    empty = Battery(0.5, 0.0, 10.0, 10.0)
    assert forecast(empty, _quarters([1.0]), 0.0, PHYSICS) is None
    assert forecast_many([Plan(empty, entry_array(_quarters([1.0])), 0.0)], PHYSICS) == [None]


POWERS = st.lists(st.floats(-80.0, 80.0, allow_nan=False), min_size=0, max_size=40)
SITE = st.tuples(
    st.floats(0.0, 1.0),  # SoC
    st.sampled_from([50.0, 100.0, 300.0]),
    st.sampled_from([25.0, 50.0]),
    POWERS,
    st.sampled_from([0.0, 100.0, 450.0, 3000.0]),  # start: some entries ended or running
)


@settings(max_examples=200, deadline=None)
@given(sites=st.lists(SITE, min_size=1, max_size=8))
def test_the_batch_gives_the_reference_answers(
    sites: list[tuple[float, float, float, list[float], float]],
) -> None:
    """forecast_many and the per-entry forecast agree on every site: lowest and highest
    SoC, the breach's moment, entry, limit and shortfall."""
    plans, references = [], []
    for soc, capacity, rating, powers, start in sites:
        battery = Battery(soc, capacity, rating, rating)
        entries = _quarters(powers)
        plans.append(Plan(battery, entry_array(entries), start))
        references.append(forecast(battery, entries, start, PHYSICS))
    for batch, reference in zip(forecast_many(plans, PHYSICS), references, strict=True):
        assert batch is not None
        assert reference is not None
        assert batch.entries == reference.entries
        assert batch.soc_min == pytest.approx(reference.soc_min, abs=1e-9)
        assert batch.soc_max == pytest.approx(reference.soc_max, abs=1e-9)
        assert (batch.breach is None) == (reference.breach is None)
        if batch.breach is not None and reference.breach is not None:
            assert batch.breach.entry == reference.breach.entry
            assert batch.breach.limit == reference.breach.limit
            assert batch.breach.at == pytest.approx(reference.breach.at, abs=1e-3)
            assert batch.breach.shortfall_kwh == pytest.approx(
                reference.breach.shortfall_kwh, abs=1e-6
            )


@settings(max_examples=200, deadline=None)
@given(soc=st.floats(0.05, 0.95), powers=POWERS)
def test_breach_and_shortfall_are_what_the_emulated_battery_does(
    soc: float, powers: list[float]
) -> None:
    """Run the plan through the emulator's battery (receiver.emulator.battery, curtailing
    at 5 %/95 % with √0.92 each way): the forecast's breach is the first entry whose power
    it curtails, and the shortfall is what it leaves undelivered from that entry on."""
    params = BatteryParams(100.0, 5.0, 95.0, ETA, ETA)
    entries = _quarters([min(max(p, -50.0), 50.0) for p in powers])
    stored, first, missing = soc * 100.0, None, 0.0
    for index, entry in enumerate(entries):
        step = integrate(stored, entry.power_kw, Q, params)
        flowed = step.discharged_ac_kwh + step.charged_ac_kwh
        planned = abs(entry.power_kw) * Q / 3600
        if first is None and planned - flowed > 1e-6:
            first = index
        if first is not None:
            missing += planned - flowed
        stored = step.stored_kwh
    found = _one(Battery(soc, 100.0, 50.0, 50.0), entries)
    if first is None:
        assert found.breach is None or found.breach.shortfall_kwh < 1e-6
    else:
        assert found.breach is not None
        assert found.breach.entry == entries[first]
        assert found.breach.shortfall_kwh == pytest.approx(missing, abs=1e-6)
