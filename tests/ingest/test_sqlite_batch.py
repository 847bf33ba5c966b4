"""The lean SQLite writer stores exactly the rows and outcomes of the SQLAlchemy Core path."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.webhook import parse_status_webhook
from receiver.storage.deliveries import (
    BatchOutcome,
    IncomingDelivery,
    canonical_digest,
    store_webhook_batch,
)
from receiver.storage.engine import create_engine_for, session_factory, upgrade

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
TABLES = ("webhook_deliveries", "schedule_entries", "schedule_status_changes")
_runs = itertools.count()

# A delivery: (site offset, [(slot, status)], seconds after T0 it arrives, remote address).
deliveries = st.tuples(
    st.integers(0, 1),
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(list(ImplementationStatus))),
        min_size=1,
        max_size=3,
    ),
    st.integers(0, 10**6),
    st.sampled_from(["127.0.0.1", None]),
)
batches = st.lists(st.lists(deliveries, min_size=1, max_size=8), min_size=1, max_size=3)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, Engine]]:
    """Two migrated SQLite databases: one written by the Core path, one by the lean one."""
    folder = tmp_path_factory.mktemp("lean")
    made = {lean: create_engine_for(f"sqlite:///{folder}/{lean}.db") for lean in (False, True)}
    for engine in made.values():
        upgrade(engine)
    yield made
    for engine in made.values():
        engine.dispose()


Raw = tuple[int, list[tuple[int, ImplementationStatus]], int, str | None]


def _delivery(base: int, raw: Raw) -> IncomingDelivery:
    site, entries, after, remote = raw
    schedule = [
        {
            "start": (T0 + SLOT * slot).isoformat(),
            "end": (T0 + SLOT * (slot + 1)).isoformat(),
            "status": int(status),
        }
        for slot, status in entries
    ]
    body = json.dumps({"siteId": base + site, "schedule": schedule})
    received = T0 + timedelta(microseconds=after * 7)
    return IncomingDelivery(body, parse_status_webhook(json.loads(body)), received, remote)


def _dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the webhook tables, each value as SQLite's exact literal (type included)."""
    path = engine.url.database
    assert path is not None
    with sqlite3.connect(path) as db:
        dump = {}
        for name in TABLES:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({name})")]
            quoted = ", ".join(f"quote({c})" for c in columns)
            dump[name] = db.execute(f"SELECT {quoted} FROM {name} ORDER BY id").fetchall()
    return dump


def _store(engine: Engine, batch: list[IncomingDelivery], lean: bool) -> list[BatchOutcome]:
    with session_factory(engine)() as session:
        return store_webhook_batch(session=session, deliveries=batch, lean=lean)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw_batches=batches)
def test_lean_and_core_paths_store_identical_rows_and_outcomes(
    engines: dict[bool, Engine], raw_batches: list[list[Raw]]
) -> None:
    """Same outcomes (ids, duplicates, changes) and byte-identical rows in every table."""
    base = 1 + 2 * next(_runs)  # fresh sites per example; both databases see the same ops
    for raw in raw_batches:
        batch = [_delivery(base, one) for one in raw]
        assert _store(engines[True], batch, lean=True) == _store(engines[False], batch, lean=False)
    assert _dump(engines[True]) == _dump(engines[False])


def test_the_lean_path_is_the_default_on_sqlite(tmp_path: Path) -> None:
    """Without `lean`, SQLite goes the lean way and still stores and deduplicates."""
    engine = create_engine_for(f"sqlite:///{tmp_path}/default.db")
    upgrade(engine)
    try:
        one = _delivery(1, (0, [(0, ImplementationStatus.IN_PROGRESS)], 0, None))
        with session_factory(engine)() as session:
            first, again = store_webhook_batch(session=session, deliveries=[one, one])
        assert (first.duplicate, again.duplicate) == (False, True)
        assert [c.status for c in first.changes] == [ImplementationStatus.IN_PROGRESS]
        assert len(_dump(engine)["schedule_status_changes"]) == 1
    finally:
        engine.dispose()


def test_a_failing_lean_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """An error after some rows of a batch were written rolls the whole batch back."""
    engine = create_engine_for(f"sqlite:///{tmp_path}/atomic.db")
    upgrade(engine)
    try:
        _store(engine, [_delivery(1, (0, [(0, ImplementationStatus.IN_PROGRESS)], 0, None))], True)
        before = _dump(engine)
        good = [
            _delivery(site, (0, [(1, ImplementationStatus.IMPLEMENTED)], 1, None))
            for site in range(2, 6)
        ]
        # Deliveries are inserted in digest order: pick one that goes after the good ones.
        last = max(canonical_digest(d.webhook) for d in good)
        candidates = (
            _delivery(site, (0, [(2, ImplementationStatus.IN_PROGRESS)], 2, None))
            for site in range(6, 200)
        )
        bad = next(d for d in candidates if canonical_digest(d.webhook) > last)
        unbindable = IncomingDelivery(bad.body, bad.webhook, bad.received_at, object())  # type: ignore[arg-type]
        with pytest.raises(sqlite3.Error):
            _store(engine, [*good, unbindable], True)
        assert _dump(engine) == before
    finally:
        engine.dispose()
