"""The demo trader's seeded price curve and its charge/discharge planning (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from receiver.cellect.validation import SiteRatings, validate_schedule
from receiver.emulator.trader import (
    LEAD,
    POWER_MARGIN,
    SLOT,
    PriceCurve,
    Ratings,
    ceil_slot,
    floor_slot,
    plan,
    stored_after,
    thresholds,
)

NOW = datetime(2030, 3, 4, 10, 7, 30, tzinfo=UTC)
SITE = Ratings(1, rated_charge_kw=100.0, rated_discharge_kw=80.0)


def test_price_curve_is_seeded_and_independent_of_call_order() -> None:
    """The same seed gives the same hourly prices in any order; another seed differs."""
    hours = [NOW + timedelta(hours=h) for h in range(48)]
    first = [PriceCurve(5).price(h) for h in hours]
    curve = PriceCurve(5)
    backwards = [curve.price(h) for h in reversed(hours)][::-1]
    assert first == backwards
    assert first != [PriceCurve(6).price(h) for h in hours]
    assert curve.price(NOW) == curve.price(NOW.replace(minute=59))


def test_price_curve_has_a_night_trough_and_an_evening_peak() -> None:
    """Over several seeds, 03:00 UTC is cheaper than 19:00 UTC."""
    day = datetime(2030, 3, 4, tzinfo=UTC)
    for seed in range(10):
        curve = PriceCurve(seed)
        assert curve.price(day.replace(hour=3)) < curve.price(day.replace(hour=19))


def test_slot_alignment() -> None:
    """Slots are 15-minute boundaries; ceil keeps an aligned moment as it is."""
    assert floor_slot(NOW) == NOW.replace(minute=0, second=0)
    assert ceil_slot(NOW) == NOW.replace(minute=15, second=0)
    aligned = NOW.replace(minute=30, second=0)
    assert ceil_slot(aligned) == aligned


def test_charges_at_the_cheapest_and_discharges_at_the_dearest_hours() -> None:
    """Every charging slot is cheaper than every idle slot, which is cheaper than every peak."""
    start = ceil_slot(NOW + LEAD)
    curve = PriceCurve(9)
    entries = plan(curve, SITE, start, start + timedelta(hours=24), random.Random(1))
    charging = {e.start for e in entries if e.power_kw < 0}
    discharging = {e.start for e in entries if e.power_kw > 0}
    slots = [start + SLOT * i for i in range(96)]
    idle = [s for s in slots if s not in charging and s not in discharging]
    assert charging
    assert discharging
    assert idle
    cheap, peak = thresholds(curve, start)
    assert max(curve.price(s) for s in charging) <= cheap
    assert min(curve.price(s) for s in discharging) >= peak
    assert max(curve.price(s) for s in charging) < min(curve.price(s) for s in idle)
    assert max(curve.price(s) for s in idle) < min(curve.price(s) for s in discharging)


def test_powers_stay_within_the_ratings_with_a_margin() -> None:
    """Charge power never exceeds the charge rating × margin; discharge likewise."""
    start = ceil_slot(NOW + LEAD)
    entries = plan(PriceCurve(2), SITE, start, start + timedelta(hours=24), random.Random(2))
    assert all(
        -SITE.rated_charge_kw * POWER_MARGIN <= e.power_kw <= SITE.rated_discharge_kw * POWER_MARGIN
        for e in entries
    )
    assert all(e.power_kw != 0 for e in entries)


def test_a_plan_passes_the_apis_validation() -> None:
    """A 12-hour plan from now + 6 min validates against the site's ratings at now."""
    for seed in range(5):
        start = ceil_slot(NOW + LEAD)
        entries = plan(
            PriceCurve(seed), SITE, start, start + timedelta(hours=12), random.Random(seed)
        )
        body = {"data": [e.wire() for e in entries]}
        result = validate_schedule(body, SiteRatings(100.0, 80.0), NOW)
        assert result.ok, result.violations
        assert all(e.start.minute % 15 == 0 and e.end - e.start == SLOT for e in entries)


def test_with_its_energy_known_a_plan_keeps_the_soc_in_the_band() -> None:
    """Given the capacity and the energy stored at its start, two days of charges and
    discharges never take the trader's forecast of the SoC out of SOC_BAND, and the plan
    still trades (a gap-only plan would pass trivially)."""
    site = Ratings(1, rated_charge_kw=100.0, rated_discharge_kw=80.0, capacity_kwh=200.0)
    start = ceil_slot(NOW + LEAD)
    for seed, stored in ((1, 30.0), (2, 100.0), (3, 170.0)):
        entries = plan(PriceCurve(seed), site, start, start + timedelta(hours=47),
                       random.Random(seed), stored_kwh=stored)  # fmt: skip
        assert any(e.power_kw < 0 for e in entries)
        assert any(e.power_kw > 0 for e in entries)
        level = stored
        for entry in entries:
            level = stored_after(level, [entry], entry.end, entry.start)
            assert 0.15 * 200.0 - 1e-6 <= level <= 0.85 * 200.0 + 1e-6, (seed, entry, level)
    unbounded = plan(PriceCurve(1), SITE, start, start + timedelta(hours=47), random.Random(1))
    charged = sum(-e.power_kw for e in unbounded if e.power_kw < 0) * 0.25
    assert charged > 200.0  # without the energy known it plans as before: far more than fits
