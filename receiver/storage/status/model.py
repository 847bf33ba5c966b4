"""What the status path takes and gives: observations in, status changes out.

An `Observation` is one entry status as a webhook delivery (or a poll) reported it; a
`StatusChange` is one transition it made, which the fleet picture and the counters
learn. `StatusWriter` is the set of statements one application needs, written once for
SQLAlchemy Core (any database) and once on SQLite's own connection (the hot path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.status.rule import Generation

Source = Literal["webhook", "poll"]
SOURCES: tuple[Source, ...] = ("webhook", "poll")
Key = tuple[int, datetime, datetime]  # a slot: site, start, end
# One delivery to store: (received_at, digest, site_id, body, remote_addr).
DeliveryRow = tuple[datetime, str, int, str, str | None]


@dataclass(frozen=True, slots=True)
class Observation:
    """One entry's status as a delivery (or a poll) reported it."""

    site_id: int
    start: datetime
    end: datetime
    status: ImplementationStatus
    observed_at: datetime
    delivery_id: int | None = None
    power_kw: float | None = None  # polls carry the planned power; webhooks do not

    @property
    def key(self) -> Key:
        return (self.site_id, self.start, self.end)


# No __slots__: a slotted frozen dataclass unpickles through Python-level __setstate__,
# and the webhook writer process sends these back for every delivery.
@dataclass(frozen=True)
class StatusChange:
    """One entry of a slot reached `status` (`previous` None: the entry was new).

    `generation` numbers the slot's entries from 0; `latest` is the status of the slot's
    newest entry after this change — what the slot is planned to do now.
    """

    site_id: int
    start: datetime
    end: datetime
    previous: ImplementationStatus | None
    status: ImplementationStatus
    source: Source
    observed_at: datetime
    generation: int = 0
    latest: ImplementationStatus | None = None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of an entry's status history (a transition, or a webhook confirming a poll)."""

    generation: Generation
    status: ImplementationStatus
    observed_at: datetime
    delivery_id: int | None


@dataclass(frozen=True, slots=True)
class GenerationWrite:
    """A generation to insert or update, with its latest move (None: its status stayed)."""

    key: Key
    generation: Generation
    moved: tuple[datetime, Source] | None


class GenerationTaken(RuntimeError):
    """A concurrent writer stored a generation number this one meant to create."""


class StatusWriter(Protocol):
    """The statements of one application of observations; nothing here commits."""

    def lock(self) -> None:
        """Hold the slots read next until the commit (SQLite: its write lock, taken now)."""

    def load(self, keys: Sequence[Key]) -> dict[Key, list[Generation]]:
        """The stored generations of `keys` (PostgreSQL: locked until the commit)."""

    def recorded(self, keys: Sequence[Key]) -> set[tuple[Key, int, int]]:
        """(slot, status, delivery id) of every history row a delivery left on `keys`."""

    def insert(self, writes: Sequence[GenerationWrite], source: Source) -> None:
        """Insert new generations, setting their `entry_id`; GenerationTaken on a race."""

    def update(self, writes: Sequence[GenerationWrite]) -> None:
        """Write stored generations back (their masks, power, and status when moved)."""

    def append_history(self, rows: Sequence[HistoryRow], source: Source) -> None:
        """Append status-history rows (their generations are stored by now)."""

    def insert_deliveries(self, rows: Sequence[DeliveryRow]) -> dict[str, int]:
        """Insert the raw deliveries not stored yet; ids by digest of those inserted."""


def entry_values(write: GenerationWrite, bind: Any) -> Mapping[str, Any]:
    """A new generation's row, values in the driver's form (`bind` converts datetimes)."""
    site_id, start, end = write.key
    generation = write.generation
    assert write.moved is not None, "a new generation has moved to its first status"
    at, source = write.moved
    return {
        "site_id": site_id,
        "start_at": bind(start),
        "end_at": bind(end),
        "generation": generation.number,
        "power_kw": generation.power_kw,
        "status": int(generation.status),
        "status_at": bind(at),
        "updated_source": source,
        "statuses_seen": generation.seen,
        "statuses_unconfirmed": generation.unconfirmed,
    }


# The columns `update_rows` fills, in order (the SQLite writer binds them positionally).
UPDATE_COLUMNS = (
    "new_status", "new_status_at", "new_source", "new_seen", "new_unconfirmed", "new_power",
    "entry_id",
)  # fmt: skip


def update_rows(writes: Sequence[GenerationWrite], bind: Any) -> list[tuple[Any, ...]]:
    """The stored generations' new values (status time and source only when it moved),
    in UPDATE_COLUMNS order, by entry id: concurrent writers lock rows in one order."""
    rows = []
    for write in sorted(writes, key=lambda w: w.generation.entry_id or 0):
        g = write.generation
        at, source = write.moved if write.moved else (None, None)
        at_value = bind(at) if at is not None else None
        rows.append(
            (int(g.status), at_value, source, g.seen, g.unconfirmed, g.power_kw, g.entry_id)
        )
    return rows


def require_all_inserted(expected: int, inserted: int) -> None:
    if inserted != expected:
        raise GenerationTaken(f"{expected - inserted} generation(s) taken by another writer")
