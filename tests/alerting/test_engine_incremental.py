"""The engine's cost follows what changed: the mirror of the firing set, and skipped flushes.

Statements are observed on the real database through SQLAlchemy's cursor events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from receiver.alerting.engine import AlertEngine
from receiver.cellect.clock import Clock
from receiver.settings import Settings
from receiver.storage.alert_tables import AlertRecord
from receiver.web.silences import silence_routes
from tests.support.alerting import new_session, outbox, site_alert

LOW7, LOW8, LOW9 = site_alert("SoCLow", 7), site_alert("SoCLow", 8), site_alert("SoCLow", 9)
HOUR = 3600.0


def make(clock: Clock, settings: Settings, store: Engine, tick_s: float = 5.0) -> AlertEngine:
    return AlertEngine(clock, settings, store, None, route=lambda _: ["t1", "t2"], tick_s=tick_s)


@contextmanager
def statements(store: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent to `store` inside the block, first words upper-cased."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    event.listen(store, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store, "before_cursor_execute", record)


def kinds(seen: list[str]) -> list[str]:
    return [s.split(" ", 1)[0] for s in seen]


def records(store: Engine) -> dict[str, AlertRecord]:
    with new_session(store) as session:
        rows = session.exec(select(AlertRecord).order_by(col(AlertRecord.id))).all()
        return {r.labels["site_id"]: r for r in rows}


def test_unchanged_evaluate_sends_no_statement(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """Once the firing set is known, a cycle where nothing changed touches no database."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7, LOW8])
    clock.advance(60)
    with statements(store) as seen:
        engine.evaluate([LOW8, LOW7])
    assert seen == []


def test_vanished_alerts_resolve_in_one_update_and_are_told_at_once(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """Vanished alerts resolve together (ends_at = now); their notice goes at the next flush."""
    engine = make(clock, settings, store, tick_s=HOUR)
    engine.evaluate([LOW7, LOW8, LOW9])
    clock.advance(30)
    assert engine.flush() == 2
    clock.advance(10)
    with statements(store) as seen:
        engine.evaluate([LOW9])
    assert kinds(seen) == ["UPDATE"]
    stored = records(store)
    assert [(stored[s].state, stored[s].ends_at) for s in "78"] == [("resolved", clock.now())] * 2
    assert stored["9"].state == "firing"
    assert engine.flush() == 2  # within the tick, and no group due: the resolution forces it
    assert outbox(store)[-1].title == "[RESOLVED] SoCLow (warning)"
    assert "Site 7" in outbox(store)[-1].body
    assert "Site 8" in outbox(store)[-1].body


def test_fire_resolve_fire_again_follows_the_database(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """An alert that resolved and holds again fires anew: the mirror and the rows agree."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7])
    clock.advance(30)
    engine.evaluate([])
    clock.advance(30)
    engine.evaluate([LOW7, LOW8])
    stored = records(store)
    assert (stored["7"].state, stored["7"].starts_at, stored["7"].ends_at) == (
        "firing",
        clock.now(),
        None,
    )
    with statements(store) as seen:
        engine.evaluate([LOW7, LOW8])
    assert seen == []


def test_idle_flush_is_skipped_until_dirty_due_or_a_tick(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """With nothing changed and nothing due a flush sends no statement and returns 0; it
    runs again once marked dirty, once a tick has passed, or once a group is due."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7])
    assert engine.flush() == 0  # the first one runs: the group is due in group_wait (30 s)
    clock.advance(1)
    engine.evaluate([LOW7, LOW8])  # new alerts alone wait for the tick
    with statements(store) as seen:
        assert engine.flush() == 0
    assert seen == []
    engine.mark_dirty()
    with statements(store) as seen:
        assert engine.flush() == 0
    assert "SELECT" in kinds(seen)
    with statements(store) as seen:
        engine.flush()
    assert seen == []
    clock.advance(5)
    with statements(store) as seen:
        engine.flush()
    assert "SELECT" in kinds(seen)
    clock.advance(24)  # t = 30: the group is due
    assert engine.flush() == 2
    assert outbox(store)[-1].title == "[FIRING:2] SoCLow (warning)"


def test_a_new_alert_is_due_a_group_wait_after_it_fires_not_a_tick(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """A new alert brings the next flush forward to a group_wait from now: with
    group_wait 0, one that fires just after a flush at the same moment is told at once
    (it used to wait for the next tick), while the flush before it sent nothing."""
    engine = make(clock, settings.model_copy(update={"group_wait_s": 0.0}), store, tick_s=HOUR)
    engine.evaluate([])
    assert engine.flush() == 0  # a flush at t = 0 with nothing firing
    engine.evaluate([LOW7])  # fires at the same moment
    assert engine.next_due == clock.now()
    assert engine.flush() == 2
    assert outbox(store)[-1].title == "[FIRING:1] SoCLow (warning)"


def test_a_due_group_is_flushed_whatever_the_tick(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """`next_due` alone brings a full flush, however long the tick."""
    engine = make(clock, settings, store, tick_s=HOUR)
    engine.evaluate([LOW7])
    engine.flush()
    clock.advance(29)
    with statements(store) as seen:
        assert engine.flush() == 0
    assert seen == []
    clock.advance(1)
    assert engine.flush() == 2


def test_silence_expired_over_http_is_applied_at_the_next_flush(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """The silence routes mark the engine dirty: expiring one tells the alert it held back."""
    engine = make(clock, settings, store, tick_s=HOUR)
    client = TestClient(Starlette(routes=silence_routes(store, clock, engine.mark_dirty)))
    body = {"matchers": {"rule": "SoCLow"}, "duration": "2h", "comment": "battery swap"}
    engine.evaluate([LOW7])
    assert engine.flush() == 0
    created = client.post("/api/silences", json=body)
    assert created.status_code == 201
    clock.advance(60)
    assert engine.flush() == 0  # due (group_wait passed), but silenced
    clock.advance(60)
    assert client.delete(f"/api/silences/{created.json()['id']}").status_code == 204
    assert engine.flush() == 2
    assert outbox(store)[-1].title == "[FIRING:1] SoCLow (warning)"


def test_silence_made_over_http_forces_a_flush(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """Making a silence also has the next flush run in full."""
    engine = make(clock, settings, store, tick_s=HOUR)
    client = TestClient(Starlette(routes=silence_routes(store, clock, engine.mark_dirty)))
    engine.evaluate([LOW7])
    engine.flush()
    body = {"matchers": {"site_id": "7"}, "duration": "1h", "comment": "swap"}
    assert client.post("/api/silences", json=body).status_code == 201
    with statements(store) as seen:
        engine.flush()
    assert "SELECT" in kinds(seen)


def _refuse_inserts(store: Engine, on: bool) -> None:
    """A trigger that makes every INSERT into alerts fail: a write the database refuses."""
    postgres = store.dialect.name == "postgresql"
    with store.begin() as conn:
        if on and postgres:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON alerts "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
        elif on:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON alerts "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(text("DROP TRIGGER refuse" + (" ON alerts" if postgres else "")))


def test_a_failed_cycle_drops_the_mirror_and_the_next_one_reloads_it(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """A cycle whose write fails changes nothing, in the database or in memory; the next
    cycle reads the firing set again and then writes what it must."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7, LOW8])
    clock.advance(60)
    _refuse_inserts(store, on=True)
    with pytest.raises(Exception, match="refused"):
        engine.evaluate([LOW7, LOW9])  # 8 resolves and 9 fires: one transaction, refused
    _refuse_inserts(store, on=False)
    assert {s: r.state for s, r in records(store).items()} == {"7": "firing", "8": "firing"}
    clock.advance(1)
    with statements(store) as seen:
        engine.evaluate([LOW7, LOW9])
    assert any(s.startswith("SELECT") and "WHERE ALERTS.STATE =" in s for s in seen)
    stored = records(store)
    assert {s: r.state for s, r in stored.items()} == {
        "7": "firing",
        "8": "resolved",
        "9": "firing",
    }
    assert stored["8"].ends_at == clock.now()
    with statements(store) as seen:
        engine.evaluate([LOW7, LOW9])
    assert seen == []


def test_tick_defaults_to_five_seconds(clock: Clock, settings: Settings, store: Engine) -> None:
    """The tick that bounds a skipped flush is the alert loop's, 5 s."""
    engine = AlertEngine(clock, settings, store, None, route=lambda _: [])
    assert engine.tick_s == 5.0
    engine.flush()
    clock.advance(4)
    with statements(store) as seen:
        engine.flush()
    assert seen == []
