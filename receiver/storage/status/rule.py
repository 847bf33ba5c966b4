"""The generations of a schedule slot: which entry each reported status belongs to. Pure.

A slot is one site's (start, end). Traders re-plan slots all the time: a new post that
overlaps a stored entry turns it 5 Overwritten (a delete turns it 4 Deleted), and the
new post's entry for the same slot starts again at 1 InProgress. The vendor's webhook
names the slot and the status, never the entry, so the monitor tells the entries of a
slot apart itself: each is a *generation*, numbered from 0 in the order first heard of.

One generation's statuses only move forward (1 → 2/3 → 4/5), and each rank is reported
at most once per entry: one posted (1), one outcome (2 Implemented or 3
ImplementationFailed), one end (4/5). An ended entry never runs, so it cannot report 1–3
afterwards; a failed entry's start has passed, so it is never overwritten or deleted;
and at most one entry of a slot is live (1/2) at a time. Every distinct report is one
transition of one entry (identical deliveries are removed before this, by digest), so
nothing reported is dropped: each either joins the generation it belongs to or starts a
new one. Which generation, when deliveries are lost or come out of order (docs/
schedules.md walks through every case):

- 1 joins the earliest generation not ended that has no 1 yet (a late 1 of an entry
  already Implemented); otherwise it starts a new generation.
- 2 joins the earliest generation not ended without an outcome; 3 the *latest* such
  one (an entry fails at its start, when only the newest entry of the slot is live).
- 4 / 5 end the earliest generation not ended that has not failed: the old entry's 5
  arriving after the new entry's 1 ends the old entry, not the new one. With none, it
  is an entry whose earlier reports were lost: a new, ended generation.
- A status that an ExAnte/ExPost poll already reported for a generation is that
  generation's own webhook arriving late: it confirms, and counts nothing again.

Polls (`Slot.snapshot`) are different: they list every entry of the slot the vendor
holds, each with its current status, so they are matched to generations one to one —
the same status first, then one the poll moves forward, then one the poll is behind
(webhooks got there first: nothing changes) — and what matches none is a generation
the webhooks missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from receiver.cellect.enums import ImplementationStatus

S = ImplementationStatus


def bit(status: ImplementationStatus) -> int:
    """The status's bit in a generation's `seen` mask."""
    return 1 << int(status)


POSTED = bit(S.IN_PROGRESS)
OUTCOME = bit(S.IMPLEMENTED) | bit(S.IMPLEMENTATION_FAILED)
ENDED = bit(S.DELETED) | bit(S.OVERWRITTEN)
FAILED = bit(S.IMPLEMENTATION_FAILED)
# Highest rank first: a generation's status is the furthest one it reported.
_BY_RANK = sorted(S, key=lambda s: (-s.rank, -int(s)))


def status_of(seen: int) -> ImplementationStatus:
    """The furthest status in a `seen` mask (which is never empty)."""
    for status in _BY_RANK:
        if seen & bit(status):
            return status
    raise ValueError("a generation has reported at least one status")


@dataclass(slots=True, eq=False)
class Generation:
    """One entry of a slot: what it reported, and whether the store must write it."""

    number: int
    seen: int  # one bit per status reported, by webhook or poll
    unconfirmed: int = 0  # statuses only a poll reported so far (their webhook may follow)
    entry_id: int | None = None  # None: not stored yet
    power_kw: float | None = None
    dirty: bool = False

    @property
    def status(self) -> ImplementationStatus:
        return status_of(self.seen)

    @property
    def ended(self) -> bool:
        return bool(self.seen & ENDED)

    def _add(self, status: ImplementationStatus, *, polled: bool) -> None:
        self.seen |= bit(status)
        if polled:
            self.unconfirmed |= bit(status)
        self.dirty = True


@dataclass(frozen=True, slots=True)
class Transition:
    """What one report did to a generation: `previous` is its status before (None: it is
    new); `new` False when the report only confirmed a status a poll had reported."""

    generation: Generation
    status: ImplementationStatus
    previous: ImplementationStatus | None
    new: bool = True


Pick = Callable[[Generation], bool]


def _can_take(status: ImplementationStatus) -> tuple[Pick, bool]:
    """Which generations a reported `status` may join, and whether the latest one wins."""
    if status is S.IN_PROGRESS:
        return (lambda g: not g.ended and not g.seen & POSTED), False
    if status is S.IMPLEMENTED:
        return (lambda g: not g.ended and not g.seen & OUTCOME), False
    if status is S.IMPLEMENTATION_FAILED:
        return (lambda g: not g.ended and not g.seen & OUTCOME), True
    return (lambda g: not g.ended and not g.seen & FAILED), False


def _first(gens: Iterable[Generation], pick: Pick, latest: bool = False) -> Generation | None:
    found = [g for g in gens if pick(g)]
    if not found:
        return None
    return found[-1] if latest else found[0]


class Slot:
    """The generations of one slot, oldest first, as stored; reports are applied here."""

    def __init__(self, generations: Sequence[Generation] = ()) -> None:
        self.generations = sorted(generations, key=lambda g: g.number)

    @property
    def latest(self) -> ImplementationStatus | None:
        """The status of the slot's newest entry: what the slot is planned to do now."""
        return self.generations[-1].status if self.generations else None

    def _new(self, status: ImplementationStatus, *, polled: bool) -> Generation:
        number = self.generations[-1].number + 1 if self.generations else 0
        generation = Generation(number, 0)
        generation._add(status, polled=polled)
        self.generations.append(generation)
        return generation

    def report(self, status: ImplementationStatus) -> Transition:
        """A webhook reported `status` for the slot: the generation it belongs to, and
        whether that is news (not when it confirms what a poll already reported)."""
        wanted = bit(status)
        polled = _first(self.generations, lambda g: bool(g.unconfirmed & wanted))
        if polled is not None:
            polled.unconfirmed &= ~wanted
            polled.dirty = True
            return Transition(polled, status, polled.status, new=False)
        pick, latest = _can_take(status)
        target = _first(self.generations, pick, latest)
        if target is None:
            return Transition(self._new(status, polled=False), status, None)
        previous = target.status
        target._add(status, polled=False)
        return Transition(target, status, previous)

    def snapshot(
        self, statuses: Sequence[ImplementationStatus], powers: Sequence[float | None] = ()
    ) -> list[Transition | None]:
        """A poll listed the slot's entries with their current statuses (and powers): per
        entry, the transition it made (None: nothing the monitor did not know)."""
        free = list(self.generations)
        made: list[Transition | None] = []
        for index, status in enumerate(statuses):
            generation, transition = self._match(free, status)
            if generation in free:
                free.remove(generation)
            power = powers[index] if index < len(powers) else None
            if power is not None and power != generation.power_kw:
                generation.power_kw, generation.dirty = power, True
            made.append(transition)
        return made

    def _match(
        self, free: list[Generation], status: ImplementationStatus
    ) -> tuple[Generation, Transition | None]:
        same = _first(free, lambda g: g.status is status)
        if same is not None:
            return same, None
        if status is not S.IN_PROGRESS:  # nothing comes before 1 for a poll to move on from
            pick, latest = _can_take(status)
            ahead = _first(free, lambda g: pick(g) and g.status.rank < status.rank, latest)
            if ahead is not None:
                previous = ahead.status
                ahead._add(status, polled=True)
                return ahead, Transition(ahead, status, previous)
        behind = _first(free, lambda g: bool(g.seen & bit(status)) or g.status.rank > status.rank)
        if behind is not None:
            return behind, None
        created = self._new(status, polled=True)
        return created, Transition(created, status, None)
