"""The one status path: observed entry statuses → generations, history rows, changes.

Webhook batches, `webhooks replay` and the ExAnte/ExPost pollers all apply what they
saw here, by the rules of `rule` (the generations of a slot), in a handful of
statements per batch: the slots' stored generations are read (and held until the
commit), the rules run in Python, then new generations are inserted and changed ones
written back in bulk, and every transition appends a history row. Slots are handled in
(site, start, end) order, so concurrent writers lock rows in one order. Nothing here
commits.

Webhooks and replays report events (`Slot.report`, in the order received); a poll's
results are a snapshot of each slot they cover (`Slot.snapshot`). A replay skips what
its delivery already recorded, so replaying the same deliveries twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlmodel import Session

from receiver.storage.status.model import (
    GenerationTaken,
    GenerationWrite,
    HistoryRow,
    Key,
    Observation,
    Source,
    StatusChange,
    StatusWriter,
)
from receiver.storage.status.rule import Slot, Transition

# A concurrent writer creating the same slot's next generation is rare (PostgreSQL
# only); a few attempts, each on a fresh read of the slots, settle it.
_ATTEMPTS = 5
Mark = tuple[Key, int, int]  # slot, status, delivery id


class _Run:
    """One application: the observations, and what it collects before writing."""

    def __init__(self, observations: Sequence[Observation], source: Source) -> None:
        self.observations = observations
        self.source = source
        self.changes: list[tuple[int, StatusChange]] = []
        self.history: list[HistoryRow] = []
        self.moved: dict[int, tuple[datetime, Source]] = {}  # id(generation) → latest move

    def record(self, index: int, slot: Slot, step: Transition) -> None:
        """Keep the history row of `step`; a new status is also a change to report."""
        seen = self.observations[index]
        generation = step.generation
        self.history.append(HistoryRow(generation, step.status, seen.observed_at, seen.delivery_id))
        if not step.new:
            return
        if generation.status is step.status:
            self.moved[id(generation)] = (seen.observed_at, self.source)
        self.changes.append(
            (
                index,
                StatusChange(
                    seen.site_id, seen.start, seen.end, step.previous, step.status,
                    self.source, seen.observed_at, generation.number, slot.latest,
                ),
            )
        )  # fmt: skip


def apply_observations(
    *,
    session: Session,
    observations: Sequence[Observation],
    source: Source,
    writer: StatusWriter,
    replay: bool = False,
) -> list[tuple[int, StatusChange]]:
    """Apply `observations`; each status change made, with its observation's index.

    `source` "poll": one poll's results for a slot are a snapshot of it; otherwise each
    observation is a reported event, applied in the given order per slot. `replay`:
    skip what the observation's delivery has already recorded.
    """
    if not observations:
        return []
    writer.lock()
    for attempt in range(_ATTEMPTS):
        try:
            with _savepoint(session):
                return _apply(writer, _Run(observations, source), replay)
        except GenerationTaken:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    # Only PostgreSQL can race on a new generation (SQLite's write lock is held by
    # now), and only there must a retry undo the attempt's writes.
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    with session.begin_nested():
        yield


def _apply(writer: StatusWriter, run: _Run, replay: bool) -> list[tuple[int, StatusChange]]:
    observations = run.observations
    by_key: dict[Key, list[int]] = {}
    for index in sorted(range(len(observations)), key=lambda i: observations[i].key):
        by_key.setdefault(observations[index].key, []).append(index)
    stored = writer.load(list(by_key))
    done = writer.recorded(list(by_key)) if replay else set()
    slots: dict[Key, Slot] = {}
    for key, indexes in by_key.items():
        slot = slots[key] = Slot(stored.get(key, ()))
        if run.source == "poll":
            _snapshot(run, slot, indexes)
        else:
            _events(run, key, slot, indexes, done)
    _write(writer, run, slots)
    return run.changes


def _events(run: _Run, key: Key, slot: Slot, indexes: list[int], done: set[Mark]) -> None:
    for index in indexes:
        seen = run.observations[index]
        if seen.delivery_id is not None:
            mark = (key, int(seen.status), seen.delivery_id)
            if mark in done:  # replayed, or listed twice in one delivery
                continue
            done.add(mark)
        run.record(index, slot, slot.report(seen.status))


def _snapshot(run: _Run, slot: Slot, indexes: list[int]) -> None:
    seen = [run.observations[i] for i in indexes]
    steps = slot.snapshot([o.status for o in seen], [o.power_kw for o in seen])
    for index, step in zip(indexes, steps, strict=True):
        if step is not None:
            run.record(index, slot, step)


def _write(writer: StatusWriter, run: _Run, slots: dict[Key, Slot]) -> None:
    new: list[GenerationWrite] = []
    changed: list[GenerationWrite] = []
    for key, slot in slots.items():
        for generation in slot.generations:
            if generation.dirty:
                write = GenerationWrite(key, generation, run.moved.get(id(generation)))
                (new if generation.entry_id is None else changed).append(write)
    if new:
        writer.insert(new, run.source)
    if changed:
        writer.update(changed)
    if run.history:
        writer.append_history(run.history, run.source)
