"""Delivered against planned energy, estimated from power samples or the SoC: known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.analytics.delivery import (
    Method,
    Sample,
    estimate,
    planned_kwh,
    tracking_error,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
START, END = T0, T0 + timedelta(minutes=15)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_planned_energy_is_power_times_duration() -> None:
    """100 kW for 15 minutes is 25 kWh; a charge is negative."""
    assert planned_kwh(100.0, START, END) == 25.0
    assert planned_kwh(-40.0, START, START + timedelta(hours=2)) == -80.0


@given(offset=st.floats(0.0, 59.9), interval=st.floats(20.0, 90.0))
def test_constant_power_is_exact_whatever_the_sampling(offset: float, interval: float) -> None:
    """Samples of a constant power, however placed, integrate to power × duration."""
    count = int(1000 / interval) + 3
    samples = [Sample(at(offset + i * interval), 80.0, 50.0) for i in range(-3, count)]
    delivery = estimate(
        samples, start=START, end=END, power_kw=100.0, max_gap_s=180.0, capacity_kwh=200.0
    )
    assert delivery.method is Method.POWER
    assert delivery.delivered_kwh == pytest.approx(20.0)
    assert delivery.deviation_kwh == pytest.approx(-5.0)


def test_samples_outside_the_window_are_not_used() -> None:
    """The previous entry's power, sampled 30 s before the start, does not leak in."""
    samples = [Sample(at(-30), -100.0, 50.0)]
    samples += [Sample(at(30 + 60 * i), 50.0, 50.0) for i in range(15)]
    samples += [Sample(at(930), 0.0, 40.0)]
    delivery = estimate(
        samples, start=START, end=END, power_kw=50.0, max_gap_s=180.0, capacity_kwh=200.0
    )
    assert (delivery.method, delivery.samples) == (Method.POWER, 15)
    assert delivery.delivered_kwh == pytest.approx(12.5)


def test_a_gap_falls_back_to_the_soc_change_through_the_efficiency() -> None:
    """With the box silent mid-entry, ΔSoC × capacity × η is the delivered energy: a
    discharge from 50 % to 40 % of 200 kWh delivered 20 kWh × 0.95."""
    samples = [Sample(at(-60), 0.0, 50.0), Sample(at(0), 100.0, 50.0)]
    samples += [Sample(at(900), 0.0, 40.0)]
    delivery = estimate(
        samples, start=START, end=END, power_kw=100.0, max_gap_s=180.0, capacity_kwh=200.0
    )
    assert delivery.method is Method.SOC
    assert delivery.delivered_kwh == pytest.approx(19.0)
    charge = [Sample(at(0), -50.0, 40.0), Sample(at(900), 0.0, 49.5)]
    delivery = estimate(
        charge, start=START, end=END, power_kw=-50.0, max_gap_s=180.0, capacity_kwh=200.0
    )
    assert delivery.delivered_kwh == pytest.approx(-19.0 / 0.95)


def test_the_soc_at_a_boundary_is_interpolated() -> None:
    """A boundary between two samples reads the SoC linearly between them."""
    samples = [Sample(at(-60), 0.0, 60.0), Sample(at(60), 0.0, 58.0)]
    samples += [Sample(at(870), 0.0, 50.0), Sample(at(930), 0.0, 49.0)]
    delivery = estimate(
        samples, start=START, end=END, power_kw=0.0, max_gap_s=100.0, capacity_kwh=100.0
    )
    assert delivery.method is Method.SOC  # the inner gap (810 s) is too long
    assert delivery.delivered_kwh == pytest.approx((59.0 - 49.5) * 0.95)


def test_nothing_measured_is_unknown() -> None:
    """No sample near the entry: delivered is unknown, and left out of the error."""
    delivery = estimate([], start=START, end=END, power_kw=10.0, max_gap_s=180, capacity_kwh=1)
    assert (delivery.method, delivery.delivered_kwh, delivery.deviation_kwh) == (
        Method.NONE,
        None,
        None,
    )


def test_tracking_error_compares_entry_by_entry() -> None:
    """A derated 0.8 site misses 20 %; the wrong direction is 200 %; unknown entries are
    left out; nothing planned has no error."""
    assert tracking_error([(25.0, 20.0), (-10.0, -8.0)]) == pytest.approx(0.2)
    assert tracking_error([(10.0, -10.0)]) == pytest.approx(2.0)
    assert tracking_error([(10.0, 10.0), (50.0, None)]) == 0.0
    assert tracking_error([(0.0, 0.0)]) is None
    assert tracking_error([]) is None
