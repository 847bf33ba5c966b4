"""The generations of a slot: every case of docs/schedules.md, on the pure rule."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.cellect.enums import ImplementationStatus as S
from receiver.storage.status.rule import Generation, Slot, bit, status_of

Entries = list[set[int]]


def _entries(slot: Slot) -> Entries:
    return [{int(s) for s in S if g.seen & bit(s)} for g in slot.generations]


def _reported(*statuses: int) -> tuple[Slot, Counter[int]]:
    """Webhooks reporting `statuses` for one slot, in this order; what each entry saw and
    how many transitions each status counted."""
    slot, counted = Slot(), Counter[int]()
    for status in statuses:
        step = slot.report(S(status))
        if step.new:
            counted[status] += 1
    return slot, counted


@pytest.mark.parametrize(
    ("reports", "entries"),
    [
        ((1, 2), [{1, 2}]),
        ((1, 3), [{1, 3}]),
        ((1, 2, 5), [{1, 2, 5}]),
        ((1, 4), [{1, 4}]),
        ((2, 1), [{1, 2}]),
    ],
    ids=["implemented", "failed", "implemented-then-overwritten", "deleted", "late-1"],
)
def test_one_entry_in_any_order_stays_one_entry(reports: tuple[int, ...], entries: Entries) -> None:
    """The reports of a single entry, also with its 1 arriving after its 2, make one entry."""
    assert _entries(_reported(*reports)[0]) == entries


def test_a_replanned_slot_keeps_the_new_entrys_failure() -> None:
    """1, 5, 1, 3: the overwritten entry, then a new entry of the slot that failed."""
    slot, counted = _reported(1, 5, 1, 3)
    assert _entries(slot) == [{1, 5}, {1, 3}]
    assert counted[3] == 1
    assert slot.latest is S.IMPLEMENTATION_FAILED


def test_the_old_entrys_late_overwrite_does_not_end_the_new_entry() -> None:
    """1, 1, 5: the second 1 is a new entry; the late 5 ends the old one, the new one is live."""
    slot, _ = _reported(1, 1, 5)
    assert _entries(slot) == [{1, 5}, {1}]
    assert slot.latest is S.IN_PROGRESS


def test_a_failure_before_the_old_entrys_overwrite_belongs_to_the_new_entry() -> None:
    """1, 1, 3, 5: an entry fails at its start, when only the newest entry is live."""
    slot, counted = _reported(1, 1, 3, 5)
    assert _entries(slot) == [{1, 5}, {1, 3}]
    assert counted == Counter({1: 2, 3: 1, 5: 1})


def test_an_implemented_report_goes_to_the_oldest_live_entry() -> None:
    """1, 1, 2, 5: the old entry was transferred before it was overwritten."""
    slot, _ = _reported(1, 1, 2, 5)
    assert _entries(slot) == [{1, 2, 5}, {1}]


def test_an_end_without_a_live_entry_is_an_entry_whose_reports_were_lost() -> None:
    """5 first (its 1 lost), then 1: an ended entry and a new live one."""
    slot, _ = _reported(5, 1)
    assert _entries(slot) == [{5}, {1}]


def test_a_failed_entry_is_never_ended() -> None:
    """1, 3, 5: the 5 belongs to another entry (a failed entry's start has passed)."""
    slot, _ = _reported(1, 3, 5)
    assert _entries(slot) == [{1, 3}, {5}]


def test_after_an_end_an_outcome_starts_a_new_entry() -> None:
    """1, 5, 2 (the new entry's 1 lost): the 2 is the new entry's, never the ended one's."""
    slot, _ = _reported(1, 5, 2)
    assert _entries(slot) == [{1, 5}, {2}]
    assert slot.latest is S.IMPLEMENTED


def test_three_generations_with_lost_reports() -> None:
    """1, 5, 2, 5, 1, 2: three entries (the second one's 1 lost), the newest Implemented."""
    slot, counted = _reported(1, 5, 2, 5, 1, 2)
    assert _entries(slot) == [{1, 5}, {2, 5}, {1, 2}]
    assert sum(counted.values()) == 6


@given(st.lists(st.sampled_from(list(S)), max_size=20))
def test_every_report_counts_exactly_once(reports: list[S]) -> None:
    """Whatever the order, each webhook report is one transition of one entry: the
    entries' statuses add up to the reports, and every failure is counted."""
    slot, counted = _reported(*reports)
    assert counted == Counter(int(s) for s in reports)
    assert sum(len(e) for e in _entries(slot)) == len(reports)
    for generation in slot.generations:
        assert not (generation.ended and generation.seen & bit(S.IMPLEMENTATION_FAILED))


def test_a_webhook_confirms_what_a_poll_reported_first() -> None:
    """A poll saw the entry Implemented; its webhook then confirms it and counts nothing."""
    slot = Slot([Generation(0, bit(S.IN_PROGRESS), entry_id=7)])
    assert [s.status for s in slot.snapshot([S.IMPLEMENTED]) if s] == [S.IMPLEMENTED]
    step = slot.report(S.IMPLEMENTED)
    assert not step.new
    assert _entries(slot) == [{1, 2}]
    assert slot.generations[0].unconfirmed == 0


def test_a_repoll_changes_nothing() -> None:
    """The same snapshot twice: the second matches every entry as it is."""
    slot = Slot()
    first = slot.snapshot([S.OVERWRITTEN, S.IMPLEMENTED], [5.0, -3.0])
    assert [s.status for s in first if s] == [S.OVERWRITTEN, S.IMPLEMENTED]
    assert slot.snapshot([S.OVERWRITTEN, S.IMPLEMENTED], [5.0, -3.0]) == [None, None]
    assert [g.power_kw for g in slot.generations] == [5.0, -3.0]


def test_a_poll_finds_the_generations_webhooks_missed() -> None:
    """Webhooks saw one entry at 1; the poll lists it overwritten and a new one Implemented."""
    slot, _ = _reported(1)
    steps = slot.snapshot([S.OVERWRITTEN, S.IMPLEMENTED])
    assert [(s.status, s.previous) for s in steps if s] == [
        (S.OVERWRITTEN, S.IN_PROGRESS),
        (S.IMPLEMENTED, None),
    ]
    assert _entries(slot) == [{1, 5}, {2}]


def test_a_poll_behind_the_webhooks_changes_nothing() -> None:
    """A poll still listing the entry at 1 after webhooks reported its 2 and 5."""
    slot, _ = _reported(1, 2, 5)
    assert slot.snapshot([S.IN_PROGRESS]) == [None]
    assert _entries(slot) == [{1, 2, 5}]


def test_a_failure_first_seen_by_a_poll_counts_once() -> None:
    """The poll reports the failure (its webhook lost or late): counted then, and neither a
    re-poll nor the late webhook counts it again."""
    slot, _ = _reported(1)
    assert [s.status for s in slot.snapshot([S.IMPLEMENTATION_FAILED]) if s] == [
        S.IMPLEMENTATION_FAILED
    ]
    assert slot.snapshot([S.IMPLEMENTATION_FAILED]) == [None]
    assert not slot.report(S.IMPLEMENTATION_FAILED).new
    assert _entries(slot) == [{1, 3}]


def test_status_of_is_the_furthest_status() -> None:
    """A mask's status is its highest-ranked status."""
    assert status_of(bit(S.IN_PROGRESS) | bit(S.IMPLEMENTED)) is S.IMPLEMENTED
    assert status_of(bit(S.IMPLEMENTED) | bit(S.OVERWRITTEN)) is S.OVERWRITTEN
    with pytest.raises(ValueError, match="at least one status"):
        status_of(0)
