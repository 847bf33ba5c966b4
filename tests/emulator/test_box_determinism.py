"""Same seed and same calls under a frozen clock give the same box, and offline edge cases."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus as S
from receiver.cellect.models import ScheduleEntry
from receiver.emulator.box import Box
from receiver.emulator.state import SiteSpec, StatusChange

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPEC = SiteSpec(1, 1, "Site 1", "DE", 52.5, 13.4, 60.0, 30.0, 30.0)


def entry(start_min: float, end_min: float, power: float) -> ScheduleEntry:
    return ScheduleEntry(
        start_date=T0 + timedelta(minutes=start_min),
        end_date=T0 + timedelta(minutes=end_min),
        ess_power_ac=power,
    )


def scenario(seed: int) -> tuple[list[StatusChange], list[object], float]:
    """Posts, an overwrite, a disconnection and random outages over three days."""
    clock = Clock.frozen(T0)
    ids = itertools.count(1)
    box = Box(
        SPEC,
        now=T0,
        rng=random.Random(seed),
        outage_rate_per_day=3.0,
        next_event_id=lambda: next(ids),
    )
    plan = random.Random(seed + 1)
    changes: list[StatusChange] = []
    for day in range(3):
        base = day * 1440 + 10
        entries = [
            entry(base + 15 * i, base + 15 * i + 15, plan.uniform(-30, 30)) for i in range(96)
        ]
        changes += box.store(entries, post_id=2 * day + 1, now=clock.now())
        changes += box.advance_to(clock.advance(6 * 3600))
        changes += box.store(
            [entry(base + 600, base + 700, 5.0)], post_id=2 * day + 2, now=clock.now()
        )
        changes += box.set_online(False, now=clock.advance(3600))
        changes += box.advance_to(clock.advance(4 * 3600))
        changes += box.set_online(True, now=clock.advance(1800))
        changes += box.advance_to(clock.advance(86400 - 6 * 3600 - 3600 - 4 * 3600 - 1800))
    outages = [(o.event_id, o.start, o.end, o.reason, o.source) for o in box.outages]
    return changes, outages, box.soc_pct


def test_same_seed_and_calls_give_identical_state_and_changes() -> None:
    """Two runs of one scenario with one seed agree on every change, outage and the SoC."""
    first, second = scenario(11), scenario(11)
    assert first == second
    assert {c.status for c in first[0]} >= {S.IN_PROGRESS, S.IMPLEMENTED, S.OVERWRITTEN}


def test_boxes_sharing_an_rng_do_not_depend_on_advance_order() -> None:
    """Boxes built from one shared rng draw their outages independently of call order."""

    def outages(order: list[int]) -> list[list[tuple[object, ...]]]:
        shared = random.Random(4)
        boxes = [
            Box(SPEC, now=T0, rng=shared, outage_rate_per_day=2.0, next_event_id=lambda: 0)
            for _ in range(2)
        ]
        for i in order:
            boxes[i].advance_to(T0 + timedelta(days=4))
        return [[(o.start, o.end, o.reason) for o in b.outages] for b in boxes]

    assert outages([0, 1]) == outages([1, 0])


def test_offline_box_learns_of_an_overwrite_only_on_reconnect() -> None:
    """Offline, an overwritten transferred entry keeps running until the box reconnects."""
    clock = Clock.frozen(T0)
    box = Box(SPEC, now=T0, rng=random.Random(1), next_event_id=lambda: 0)
    box.store([entry(10, 130, -10.0)], post_id=1, now=T0)
    box.advance_to(clock.advance(60))
    box.set_online(False, now=clock.now())
    changes = box.store([entry(20, 40, 0.0)], post_id=2, now=clock.advance(60))
    assert [(c.post_id, c.status) for c in changes] == [(1, S.OVERWRITTEN), (2, S.IN_PROGRESS)]
    box.advance_to(clock.advance(43 * 60))  # 45 min: the cloud's overwrite never arrived
    assert box.power_kw == -10.0
    box.set_online(True, now=clock.now())
    assert box.power_kw == 0.0  # the cut applies at once on reconnect
