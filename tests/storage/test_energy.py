"""Entries' delivered energy as stored: what is left to compute, once per entry, the
windows read back at start, and the report's rows — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus as S
from receiver.storage.energy import (
    EnergyRow,
    ended_without_energy,
    latest_energy,
    measurements_between,
    record_energy,
)
from receiver.storage.reads import ReadError
from receiver.storage.reads.energy import availability_share, energy_report
from receiver.storage.sites import record_measurements, upsert_sites
from receiver.storage.status import Observation, apply_observations
from receiver.storage.status import writer_for as _writer
from tests.support.records import site_info

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def _entry(session: Session, slot: int, status: S, power: float | None = 40.0) -> None:
    start = T0 + slot * QUARTER
    seen = Observation(1, start, start + QUARTER, status, T0, None, power)
    apply_observations(session=session, observations=[seen], source="poll", writer=_writer(session))


def _row(slot: int, planned: float, delivered: float | None) -> EnergyRow:
    start = T0 + slot * QUARTER
    return EnergyRow(1, start, start + QUARTER, 0, planned, delivered, "power", 15)


def test_only_entries_that_ran_with_a_known_plan_are_left_to_compute(session: Session) -> None:
    """Implemented and failed entries with their power are; deleted, overwritten, still
    InProgress, without power, or already computed ones are not."""
    _entry(session, 0, S.IMPLEMENTED)
    _entry(session, 1, S.IMPLEMENTATION_FAILED)
    _entry(session, 2, S.DELETED)
    _entry(session, 3, S.OVERWRITTEN)
    _entry(session, 4, S.IN_PROGRESS)
    _entry(session, 5, S.IMPLEMENTED, power=None)
    _entry(session, 6, S.IMPLEMENTED)
    session.commit()
    record_energy(session=session, rows=[_row(6, 10.0, 10.0)], computed_at=T0)
    found = ended_without_energy(
        session=session, ended_after=T0 - timedelta(days=2), ended_before=T0 + timedelta(days=1)
    )
    assert [(e.start - T0) // QUARTER for e in found] == [0, 1]
    assert {e.power_kw for e in found} == {40.0}


def test_an_entry_is_stored_once(session: Session) -> None:
    """Recording the same entry again inserts nothing and reports nothing inserted."""
    first = record_energy(session=session, rows=[_row(0, 10.0, 8.0)], computed_at=T0)
    again = record_energy(
        session=session, rows=[_row(0, 10.0, 9.0), _row(1, 5.0, None)], computed_at=T0
    )
    session.commit()
    assert (len(first), [(r.start - T0) // QUARTER for r in again]) == (1, [1])
    windows = latest_energy(session=session, per_site=5, ended_after=T0 - QUARTER)
    assert [(r.planned_kwh, r.delivered_kwh) for r in windows[1]] == [(10.0, 8.0), (5.0, None)]


def test_windows_read_back_hold_the_latest_entries_oldest_first(session: Session) -> None:
    """At start each site's last N entries come back in order."""
    record_energy(session=session, rows=[_row(i, float(i), float(i)) for i in range(6)],
                  computed_at=T0)  # fmt: skip
    session.commit()
    windows = latest_energy(session=session, per_site=3, ended_after=T0 - QUARTER)
    assert [r.planned_kwh for r in windows[1]] == [3.0, 4.0, 5.0]


def test_measurements_are_read_in_order_within_the_bounds(session: Session) -> None:
    """The site's samples between two moments, oldest first, with power and SoC."""
    upsert_sites(session=session, sites=[site_info(1)], seen_at=T0)
    for minute in (3, 1, 2, 9):
        info = site_info(1, soc=50.0 + minute, power=float(minute))
        at = T0 + timedelta(minutes=minute)
        record_measurements(session=session, sites=[info], measured_at=at)
    session.commit()
    found = measurements_between(session=session, site_id=1, lo=T0, hi=T0 + timedelta(minutes=3))
    assert [(p, soc) for _, p, soc in found] == [(1.0, 51.0), (2.0, 52.0), (3.0, 53.0)]


def test_the_report_sums_per_site_and_refuses_bad_windows(session: Session) -> None:
    """A site row sums its entries (unknown delivered left out of the sums) before them;
    a window ending before it starts, or longer than 31 days, is refused naming it."""
    upsert_sites(session=session, sites=[site_info(1, name="Alpha")], seen_at=T0)
    _entry(session, 0, S.IMPLEMENTED)
    _entry(session, 1, S.IMPLEMENTATION_FAILED)
    record_energy(session=session, rows=[_row(0, 10.0, 8.0), _row(1, 10.0, None)], computed_at=T0)
    session.commit()
    rows = energy_report(session=session, start=T0, end=T0 + timedelta(hours=1))
    assert [(r.row, r.status, r.failures) for r in rows] == [
        ("site", None, 1), ("entry", 2, 0), ("entry", 3, 1)
    ]  # fmt: skip
    site = rows[0]
    assert (site.site_name, site.planned_kwh, site.delivered_kwh) == ("Alpha", 20.0, 8.0)
    assert site.deviation_kwh == pytest.approx(-2.0)
    assert site.tracking_error == pytest.approx(0.2)
    with pytest.raises(ReadError) as refused:
        energy_report(session=session, start=T0, end=T0)
    assert refused.value.field == "to"
    with pytest.raises(ReadError) as refused:
        energy_report(session=session, start=T0, end=T0 + timedelta(days=32))
    assert refused.value.field == "from"


def test_availability_share_merges_overlapping_outages() -> None:
    """Two overlapping outages covering 30 of 60 minutes leave half the hour available."""
    hour = (T0, T0 + timedelta(hours=1))
    outages = [
        (T0 - timedelta(minutes=5), T0 + timedelta(minutes=20)),
        (T0 + timedelta(minutes=10), T0 + timedelta(minutes=30)),
    ]
    assert availability_share(hour, outages) == pytest.approx(0.5)
    assert availability_share(hour, []) == 1.0
