"""The box executes its schedule: power, gaps, energy balance, SoC limits, offline running."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus as S
from receiver.cellect.models import ScheduleEntry
from receiver.emulator.box import Box
from receiver.emulator.state import SiteSpec

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPEC = SiteSpec(1, 1, "Site 1", "DE", 52.5, 13.4, 100.0, 50.0, 40.0, charge_efficiency=0.9)


def make_box(clock: Clock, spec: SiteSpec = SPEC) -> Box:
    ids = itertools.count(1)
    return Box(spec, now=clock.now(), rng=random.Random(3), next_event_id=lambda: next(ids))


def entry(start_min: float, end_min: float, power: float) -> ScheduleEntry:
    return ScheduleEntry(
        start_date=T0 + timedelta(minutes=start_min),
        end_date=T0 + timedelta(minutes=end_min),
        ess_power_ac=power,
    )


def advance_until(clock: Clock, moment: datetime) -> datetime:
    return clock.advance((moment - clock.now()).total_seconds())


def sample_power(box: Box, clock: Clock, minutes: int) -> list[float]:
    """The box's power at the start of each of the next `minutes` minutes."""
    powers = []
    for _ in range(minutes):
        powers.append(box.power_kw)
        box.advance_to(clock.advance(60))
    return powers


def test_power_follows_entries_and_is_zero_in_gaps() -> None:
    """The site's power is the running entry's power, and 0 kW in a gap between entries."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 20, -30.0), entry(30, 40, 25.0)], post_id=1, now=clock.now())
    powers = sample_power(box, clock, 45)
    assert powers == [0.0] * 10 + [-30.0] * 10 + [0.0] * 10 + [25.0] * 10 + [0.0] * 5


def test_energy_balance_with_efficiencies() -> None:
    """∫P dt over a charge-then-discharge schedule matches ΔSoC × capacity via η_c and η_d."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 40, -40.0), entry(55, 100, 30.0)], post_id=1, now=clock.now())
    before = box.soc_pct
    powers = sample_power(box, clock, 110)
    charged = sum(-p for p in powers if p < 0) / 60.0  # kWh drawn from the grid
    discharged = sum(p for p in powers if p > 0) / 60.0  # kWh exported
    assert (charged, discharged) == (20.0, 22.5)
    stored_delta = (box.soc_pct - before) / 100.0 * SPEC.capacity_kwh
    expected = charged * SPEC.charge_efficiency - discharged / SPEC.discharge_efficiency
    assert abs(stored_delta - expected) < 1e-9
    # Losses only: the battery gained less than the grid gave it net.
    assert stored_delta < charged - discharged
    assert abs(box.charged_ac_kwh - charged) < 1e-9
    assert abs(box.discharged_ac_kwh - discharged) < 1e-9


def test_full_battery_stops_charging_and_empty_battery_stops_discharging() -> None:
    """At max SoC a charge is curtailed to 0 kW; at min SoC a discharge is too."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 130, -50.0), entry(130, 310, 40.0)], post_id=1, now=clock.now())
    # 45 kWh to max at 45 kW stored: full after 60 min of charging (at 70 min).
    box.advance_to(clock.advance(69 * 60))
    assert box.power_kw == -50.0
    box.advance_to(clock.advance(2 * 60))
    assert box.soc_pct == SPEC.max_soc_pct
    assert box.power_kw == 0.0
    box.advance_to(clock.advance(59 * 60 + 60))  # 131 min: discharging
    assert box.power_kw == 40.0
    box.advance_to(clock.advance(170 * 60))  # 301 min: 90 kWh drawn at 42.1 kW: empty
    assert box.soc_pct == SPEC.min_soc_pct
    assert box.power_kw == 0.0
    charged = 45.0 / SPEC.charge_efficiency
    assert abs(box.charged_ac_kwh - charged) < 1e-9


def test_offline_box_keeps_executing_for_48_hours() -> None:
    """Offline for 48 h, the box runs what it holds, fails what it never got, then syncs."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    held = [entry(60 * h + 10, 60 * h + 25, -5.0 if h % 2 else 5.0) for h in range(47)]
    box.store(held, post_id=1, now=clock.now())
    box.advance_to(clock.advance(60))
    box.set_online(False, now=clock.now())
    box.store([entry(60 * 48 + 40, 60 * 48 + 55, 1.0)], post_id=2, now=clock.now())
    box.store([entry(60 * 47 + 10, 60 * 47 + 25, 7.0)], post_id=3, now=clock.now())
    for hour in range(48):
        box.advance_to(advance_until(clock, T0 + timedelta(minutes=60 * hour + 15)))
        assert box.power_kw == ((-5.0 if hour % 2 else 5.0) if hour < 47 else 0.0)
    box.advance_to(advance_until(clock, T0 + timedelta(hours=48, minutes=1)))
    assert [e.status for e in box.entries_between(T0, T0 + timedelta(hours=49))][-2:] == [
        S.IMPLEMENTATION_FAILED,
        S.IN_PROGRESS,
    ]
    changes = box.set_online(True, now=clock.now())
    assert [(c.post_id, c.status) for c in changes] == [(2, S.IMPLEMENTED)]


power_kw = st.floats(min_value=-50.0, max_value=40.0, allow_nan=False)
slot = st.tuples(st.integers(1, 240), st.integers(0, 60), power_kw)  # minutes, gap, kW


@settings(max_examples=60, deadline=None)
@given(
    slots=st.lists(slot, min_size=1, max_size=25),
    steps=st.lists(st.integers(1, 7200), min_size=1, max_size=40),
    initial=st.floats(min_value=5.0, max_value=95.0),
)
def test_soc_stays_within_limits(
    slots: list[tuple[int, int, float]], steps: list[int], initial: float
) -> None:
    """For any schedule and any advance steps the SoC stays within [min, max]."""
    spec = SiteSpec(2, 1, "Site 2", "FR", 48.8, 2.3, 20.0, 50.0, 40.0, initial_soc_pct=initial)
    clock = Clock.frozen(T0)
    box = make_box(clock, spec)
    entries, start = [], 10
    for minutes, gap, power in slots:
        entries.append(entry(start, start + minutes, power))
        start += minutes + gap
    box.store(entries, post_id=1, now=clock.now())
    for step in steps:
        box.advance_to(clock.advance(step))
        assert spec.min_soc_pct - 1e-9 <= box.soc_pct <= spec.max_soc_pct + 1e-9
        assert not (box.power_kw > 0 and box.soc_pct <= spec.min_soc_pct)
        assert not (box.power_kw < 0 and box.soc_pct >= spec.max_soc_pct)
