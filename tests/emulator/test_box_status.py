"""The box's schedule statuses: transfer 1→2, failure 1→3 offline, overwrite 5, delete 4."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus as S
from receiver.cellect.models import ScheduleEntry
from receiver.emulator.box import Box
from receiver.emulator.state import SiteSpec

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPEC = SiteSpec(1, 1, "Site 1", "DE", 52.5, 13.4, 100.0, 50.0, 50.0)


def make_box(clock: Clock, **kwargs: float) -> Box:
    ids = itertools.count(1)
    return Box(
        SPEC, now=clock.now(), rng=random.Random(7), next_event_id=lambda: next(ids), **kwargs
    )


def entry(start_min: float, end_min: float, power: float) -> ScheduleEntry:
    return ScheduleEntry(
        start_date=T0 + timedelta(minutes=start_min),
        end_date=T0 + timedelta(minutes=end_min),
        ess_power_ac=power,
    )


def statuses(box: Box) -> list[S]:
    return [e.status for e in box.entries_between(T0, T0 + timedelta(days=3))]


def test_store_reports_in_progress_then_implemented_after_the_transfer_delay() -> None:
    """A stored entry is 1 InProgress and becomes 2 Implemented transfer_delay_s later."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    changes = box.store([entry(10, 25, 20.0)], post_id=9, now=clock.now())
    assert [(c.status, c.post_id, c.site_id) for c in changes] == [(S.IN_PROGRESS, 9, 1)]
    assert box.advance_to(clock.advance(29)) == []
    changes = box.advance_to(clock.advance(1))
    assert [(c.status, c.at) for c in changes] == [(S.IMPLEMENTED, T0 + timedelta(seconds=30))]
    assert box.entries_between(T0, T0 + timedelta(hours=1))[0].transferred


def test_offline_entries_fail_at_their_start() -> None:
    """An entry the box could not receive before its start becomes 3 ImplementationFailed."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.set_online(False, now=clock.now())
    box.store([entry(10, 25, 20.0)], post_id=1, now=clock.now())
    changes = box.advance_to(clock.advance(3600))
    assert [(c.status, c.at) for c in changes] == [
        (S.IMPLEMENTATION_FAILED, T0 + timedelta(minutes=10))
    ]
    assert box.power_kw == 0.0


def test_reconnect_transfers_pending_future_entries_at_once() -> None:
    """On reconnect, waiting entries whose start is still ahead become 2 Implemented."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.set_online(False, now=clock.now())
    box.store([entry(10, 25, 20.0), entry(60, 75, -20.0)], post_id=1, now=clock.now())
    box.advance_to(clock.advance(30 * 60))
    changes = box.set_online(True, now=clock.now())
    assert [(c.status, c.at) for c in changes] == [(S.IMPLEMENTED, clock.now())]
    assert statuses(box) == [S.IMPLEMENTATION_FAILED, S.IMPLEMENTED]


def test_later_post_overwrites_future_entries() -> None:
    """Live entries a new post overlaps become 5 Overwritten; the rest stay."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 25, 20.0), entry(25, 40, 10.0)], post_id=1, now=clock.now())
    box.advance_to(clock.advance(60))
    changes = box.store([entry(30, 45, -5.0)], post_id=2, now=clock.now())
    assert [(c.post_id, c.status) for c in changes] == [(1, S.OVERWRITTEN), (2, S.IN_PROGRESS)]
    assert statuses(box) == [S.IMPLEMENTED, S.OVERWRITTEN, S.IN_PROGRESS]


def test_overwritten_future_entry_never_runs() -> None:
    """A transferred entry overwritten before its start is not executed."""
    clock = Clock.frozen(T0)
    box = make_box(clock, transfer_delay_s=600.0)
    box.store([entry(10, 25, 20.0)], post_id=1, now=clock.now())
    box.advance_to(clock.advance(60))
    box.store([entry(20, 30, 0.0)], post_id=2, now=clock.now())
    box.advance_to(clock.advance(14 * 60))  # 15 min: the new entry is not transferred yet
    assert box.power_kw == 0.0
    assert box.soc_pct == SPEC.initial_soc_pct


def test_running_entry_overwritten_stops_where_the_new_one_starts() -> None:
    """A running entry overlapped by a new post is Overwritten and runs until the new start."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 70, 20.0)], post_id=1, now=clock.now())
    box.advance_to(clock.advance(20 * 60))
    assert box.power_kw == 20.0
    changes = box.store([entry(30, 40, -10.0)], post_id=2, now=clock.now())
    assert [(c.post_id, c.status) for c in changes] == [(1, S.OVERWRITTEN), (2, S.IN_PROGRESS)]
    box.advance_to(clock.advance(9 * 60))  # 29 min: the old entry still runs
    assert box.power_kw == 20.0
    box.advance_to(clock.advance(60))  # 30 min: the new entry runs
    assert box.power_kw == -10.0
    box.advance_to(clock.advance(15 * 60))  # 45 min: the old one does not resume
    assert box.power_kw == 0.0


def test_delete_marks_future_entries_deleted_and_leaves_running_ones() -> None:
    """delete() makes not-started overlapping entries 4 Deleted; running ones keep going."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 25, 20.0), entry(25, 40, 10.0)], post_id=1, now=clock.now())
    box.advance_to(clock.advance(15 * 60))
    changes = box.delete(start=T0, end=T0 + timedelta(hours=1), now=clock.now())
    assert [(c.start, c.status) for c in changes] == [(T0 + timedelta(minutes=25), S.DELETED)]
    box.advance_to(clock.advance(15 * 60))  # 30 min: the deleted entry does not run
    assert box.power_kw == 0.0
    assert statuses(box) == [S.IMPLEMENTED, S.DELETED]


def test_entries_between_returns_overlapping_entries_by_start() -> None:
    """entries_between lists every stored entry overlapping the window, in start order."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.store([entry(10, 25, 1.0), entry(25, 40, 2.0), entry(40, 55, 3.0)], post_id=1, now=T0)
    found = box.entries_between(T0 + timedelta(minutes=24), T0 + timedelta(minutes=40))
    assert [e.power_kw for e in found] == [1.0, 2.0]


def test_earlier_now_is_treated_as_the_current_time() -> None:
    """A call with a time before the box's own never moves the simulation backwards."""
    clock = Clock.frozen(T0)
    box = make_box(clock)
    box.advance_to(T0 + timedelta(hours=1))
    assert box.advance_to(T0) == []
    assert box.now == T0 + timedelta(hours=1)
