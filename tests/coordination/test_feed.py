"""The fleet feed on a real PostgreSQL: rows come in commit order, never skipped, never
those of a transaction rolled back, never the reader's own; every kind round-trips."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.models import AvailabilityEvent, SiteInformation, TimeSeriesResult
from receiver.coordination import feed
from receiver.storage.status.model import StatusChange

T0 = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _change(site: int, status: ImplementationStatus, minutes: int = 0) -> StatusChange:
    start = T0 + timedelta(minutes=15 * minutes)
    return StatusChange(
        site_id=site,
        start=start,
        end=start + timedelta(minutes=15),
        previous=None
        if status is ImplementationStatus.IN_PROGRESS
        else ImplementationStatus.IN_PROGRESS,
        status=status,
        source="webhook",
        observed_at=T0,
        generation=1,
        latest=status,
    )


def _publish(session: Session, replica: str, site: int) -> None:
    body = feed.status_body([_change(site, ImplementationStatus.IMPLEMENTATION_FAILED)], T0)
    feed.publish(session=session, replica=replica, kind="status", body=body)


def _read_all(
    engine: Engine, cursor: feed.Cursor, expected: int, skip: str = "reader"
) -> tuple[list[int], feed.Cursor]:
    """Read until `expected` sites came (bounded): a transaction of another client of the
    server (any database) holds the feed back until it ends, as it should."""
    seen: list[int] = []
    deadline = time.monotonic() + 20
    while len(seen) < expected and time.monotonic() < deadline:
        more, cursor = _read(engine, cursor, skip)
        seen += more
        if len(seen) < expected:
            time.sleep(0.05)
    return seen, cursor


def _read(
    engine: Engine, cursor: feed.Cursor, skip: str = "reader"
) -> tuple[list[int], feed.Cursor]:
    with Session(engine) as session:
        entries, cursor, _ = feed.read(session=session, cursor=cursor, skip=skip)
    sites = [c.site_id for e in entries if isinstance(e, feed.StatusEntry) for c in e.changes]
    return sites, cursor


def test_a_row_committed_late_is_not_skipped(postgres_engine: Engine) -> None:
    """A transaction that began first and commits last holds later rows back until it
    ends, then both come in transaction order: an id-based cursor would have skipped it."""
    with Session(postgres_engine) as session:
        cursor = feed.start_cursor(session)
    slow = Session(postgres_engine)
    try:
        _publish(slow, "a", 1)  # the slow transaction has its xid now, uncommitted
        with Session(postgres_engine) as fast:
            _publish(fast, "b", 2)
            fast.commit()
        seen, cursor = _read(postgres_engine, cursor)
        assert seen == []  # row 2 is committed, but an older transaction is still open
        slow.commit()
    finally:
        slow.close()
    seen, cursor = _read_all(postgres_engine, cursor, 2)
    assert seen == [1, 2]
    assert _read(postgres_engine, cursor)[0] == []


def test_rolled_back_rows_never_appear_and_own_rows_are_skipped(postgres_engine: Engine) -> None:
    with Session(postgres_engine) as session:
        cursor = feed.start_cursor(session)
    with Session(postgres_engine) as session:
        _publish(session, "a", 1)
        session.rollback()
    with Session(postgres_engine) as session:
        _publish(session, "reader", 2)
        _publish(session, "a", 3)
        session.commit()
    seen, cursor = _read_all(postgres_engine, cursor, 1, skip="reader")
    assert seen == [3]
    assert _read(postgres_engine, cursor)[0] == []


def test_prune_keeps_recent_rows(postgres_engine: Engine) -> None:
    with Session(postgres_engine) as session:
        _publish(session, "a", 1)
        _publish(session, "a", 2)
        session.commit()
    with Session(postgres_engine) as session:
        session.execute(
            text(
                "UPDATE fleet_feed SET at = at - interval '2 hours'"
                " WHERE id = (SELECT min(id) FROM fleet_feed)"
            )
        )
        session.commit()
    with Session(postgres_engine) as session:
        assert feed.prune(session=session, keep=timedelta(minutes=30)) == 1
        session.commit()
    seen, _ = _read_all(postgres_engine, (0, 0), 1)
    assert seen == [2]


def test_every_kind_round_trips(postgres_engine: Engine) -> None:
    changes = [
        _change(7, ImplementationStatus.IN_PROGRESS),
        _change(7, ImplementationStatus.IMPLEMENTED, 1),
    ]
    result = TimeSeriesResult.model_validate(
        {"startDate": "2026-12-01T13:00:00Z", "endDate": "2026-12-01T13:15:00Z",
         "essPowerAC": -20.5, "implementationStatus": 2}
    )  # fmt: skip
    event = AvailabilityEvent.model_validate(
        {"eventId": 4, "siteId": 7, "siteName": "Weiher", "country": "DE", "latitude": 48.1,
         "longitude": 11.5, "startDate": "2026-12-01T11:00:00Z", "endDate": None,
         "availabilityStatus": 2, "type": "Unplanned", "reason": 4, "source": 4}
    )  # fmt: skip
    site = SiteInformation.model_validate(
        {"siteId": 7, "siteName": "Weiher", "country": "DE", "latitude": 48.1,
         "longitude": 11.5, "essInstalledEnergyCapacity": 100.0, "essSoC": 42.0,
         "essPower": -3.0, "essPowerACRatedCharge": 50.0, "essPowerACRatedDischarge": 50.0}
    )  # fmt: skip
    with Session(postgres_engine) as session:
        cursor = feed.start_cursor(session)
        for kind, body in [
            ("status", feed.status_body(changes, None)),
            ("plan", feed.plan_body({7: [result]})),
            ("events", feed.events_body(T0, {7: [event]})),
            ("portfolio", feed.portfolio_body(T0, [site])),
        ]:
            feed.publish(session=session, replica="a", kind=kind, body=body)
        session.commit()
    entries: list[feed.Entry] = []
    deadline = time.monotonic() + 20  # other clients' transactions hold the feed back
    while len(entries) < 4 and time.monotonic() < deadline:
        with Session(postgres_engine) as session:
            more, cursor, _ = feed.read(session=session, cursor=cursor, skip="b")
        entries += more
    status, plan, events, portfolio = entries
    assert isinstance(status, feed.StatusEntry)
    assert status.changes == changes
    assert status.received is None
    assert isinstance(plan, feed.PlanEntry)
    assert plan.plans == {7: {(result.start_date, result.end_date): result.implementation_status}}
    assert plan.powers == {7: {(result.start_date, result.end_date): -20.5}}
    assert isinstance(events, feed.EventsEntry)
    assert events.events == {7: [event]}
    assert events.at == T0
    assert isinstance(portfolio, feed.PortfolioEntry)
    assert portfolio.sites == [site]
    assert feed.sites_of(entries) == {7}


def test_a_plan_row_of_an_older_version_has_statuses_without_powers() -> None:
    """A `plan` row written before powers were carried (rows of three) still decodes: its
    statuses apply, and no powers are claimed for it (the reader keeps those it had)."""
    start, end = feed.micros(T0), feed.micros(T0 + timedelta(minutes=15))
    entry = feed.decode("plan", json.dumps({"s": {"7": [[start, end, 2]]}}))
    assert isinstance(entry, feed.PlanEntry)
    assert entry.plans == {7: {(T0, T0 + timedelta(minutes=15)): ImplementationStatus(2)}}
    assert entry.powers == {}
