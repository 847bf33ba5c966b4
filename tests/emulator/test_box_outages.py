"""Outages of a box: scripted and random, zero power while they run, deterministic by seed."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from receiver.cellect.clock import Clock
from receiver.cellect.enums import DowntimeType, EventReason, EventSource
from receiver.cellect.enums import ImplementationStatus as S
from receiver.cellect.models import ScheduleEntry
from receiver.emulator.box import Box
from receiver.emulator.state import Outage, SiteSpec

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPEC = SiteSpec(1, 1, "Site 1", "DE", 52.5, 13.4, 100.0, 50.0, 50.0)


def make_box(clock: Clock, seed: int = 7, rate: float = 0.0, first_id: int = 1) -> Box:
    ids = itertools.count(first_id)
    return Box(
        SPEC,
        now=clock.now(),
        rng=random.Random(seed),
        outage_rate_per_day=rate,
        next_event_id=lambda: next(ids),
    )


def entry(start_min: float, end_min: float, power: float) -> ScheduleEntry:
    return ScheduleEntry(
        start_date=T0 + timedelta(minutes=start_min),
        end_date=T0 + timedelta(minutes=end_min),
        ess_power_ac=power,
    )


def unplanned(box: Box, clock: Clock, duration_s: float | None) -> Outage:
    return box.start_outage(
        now=clock.now(),
        downtime_type=DowntimeType.UNPLANNED,
        reason=EventReason.OUTAGE,
        source=EventSource.INVERTER,
        duration_s=duration_s,
    )


def test_scripted_outage_zeroes_power_until_ended() -> None:
    """During an open outage the site is unavailable at 0 kW; end_outage sets its end."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 70, 20.0)], post_id=1, now=clock.now())
    box.advance_to(clock.advance(20 * 60))
    outage = unplanned(box, clock, None)
    assert (outage.event_id, outage.start, outage.end) == (1, clock.now(), None)
    box.advance_to(clock.advance(10 * 60))
    assert (box.available, box.power_kw) == (False, 0.0)
    soc = box.soc_pct
    ended = box.end_outage(now=clock.advance(5 * 60))
    assert ended is outage
    assert outage.end == T0 + timedelta(minutes=35)
    assert box.soc_pct == soc  # no energy flowed while the site was out
    assert (box.available, box.power_kw) == (True, 20.0)
    assert box.outages == [outage]


def test_end_outage_without_a_running_outage_returns_none() -> None:
    """end_outage is a no-op (None) when no outage is running."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    assert box.end_outage(now=clock.now()) is None


def test_planned_outage_is_announced_ahead_and_ends_by_itself() -> None:
    """A planned outage is listed at once, starts later and gets its end when over."""
    clock = Clock.frozen(T0)
    box = make_box(clock, first_id=40)
    outage = box.start_outage(
        now=clock.now(),
        downtime_type=DowntimeType.PLANNED,
        reason=EventReason.MAINTENANCE,
        source=EventSource.CELLECT,
        duration_s=3600.0,
        starts_in_s=1800.0,
    )
    assert (outage.event_id, outage.announced_at) == (40, T0)
    assert outage.start == T0 + timedelta(minutes=30)
    box.advance_to(clock.advance(1799))
    assert box.available
    box.advance_to(clock.advance(1))
    assert not box.available
    box.advance_to(clock.advance(7200))
    assert box.available
    assert outage.end == T0 + timedelta(minutes=90)


def test_changes_during_an_outage_call_are_reported_by_the_next_call() -> None:
    """Status changes reached while handling start_outage are returned by the next call."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 25, 5.0)], post_id=1, now=clock.now())
    clock.advance(60)
    unplanned(box, clock, 60.0)
    assert [c.status for c in box.advance_to(clock.now())] == [S.IMPLEMENTED]


def signature(box: Box) -> list[tuple[object, ...]]:
    return [
        (o.event_id, o.downtime_type, o.reason, o.source, o.start, o.end, o.announced_at)
        for o in box.outages
    ]


def test_random_outages_do_not_depend_on_the_advance_step() -> None:
    """One 10-day step and 1,440 ten-minute steps yield the same random outages."""
    one, many = Clock.frozen(T0), Clock.frozen(T0)
    box_one, box_many = make_box(one, seed=5, rate=2.0), make_box(many, seed=5, rate=2.0)
    box_one.advance_to(one.advance(10 * 86400))
    for _ in range(1440):
        box_many.advance_to(many.advance(600))
    assert len(box_one.outages) >= 5
    assert signature(box_one) == signature(box_many)
    types = {o.downtime_type for o in box_one.outages}
    assert types == {DowntimeType.PLANNED, DowntimeType.UNPLANNED}


def test_random_outages_depend_on_the_seed() -> None:
    """Another seed draws another sequence of outages."""
    a, b = Clock.frozen(T0), Clock.frozen(T0)
    box_a, box_b = make_box(a, seed=5, rate=2.0), make_box(b, seed=6, rate=2.0)
    box_a.advance_to(a.advance(5 * 86400))
    box_b.advance_to(b.advance(5 * 86400))
    assert signature(box_a) != signature(box_b)


def test_random_outage_makes_the_site_unavailable_while_it_runs() -> None:
    """While a random outage runs the site is unavailable at 0 kW despite its schedule."""
    clock = Clock.frozen(T0)
    box = make_box(clock, seed=5, rate=4.0)
    box.advance_to(clock.advance(3 * 86400))
    outage = box.outages[-1]
    start = outage.start
    later = make_box(Clock.frozen(T0), seed=5, rate=4.0)
    minutes = (start - T0).total_seconds() / 60
    later.advance_to(start - timedelta(minutes=10))
    later.store([entry(minutes - 5, minutes + 5, 10.0)], post_id=1, now=later.now)
    later.advance_to(start - timedelta(seconds=1))
    assert (later.available, later.power_kw) == (True, 10.0)
    later.advance_to(start)
    assert (later.available, later.power_kw) == (False, 0.0)
