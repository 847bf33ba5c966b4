"""Sites are upserted from master data, marked absent when they leave, measured over time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from receiver.cellect.models import SiteInformation
from receiver.storage.reads import MAX_LIMIT, all_items
from receiver.storage.reads.measurements import measurement_page
from receiver.storage.reads.sites import site_page
from receiver.storage.sites import mark_absent_sites, record_measurements, upsert_sites
from receiver.storage.tables import Site

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MakeSite = Callable[..., SiteInformation]


def _site_ids(session: Session, present: bool | None = True) -> list[int]:
    """Every site's id, by id: only those in the portfolio unless `present` is None."""
    return [
        s.site_id
        for s in all_items(
            lambda c: site_page(session=session, now=T0, after=c, limit=MAX_LIMIT, present=present)
        )
    ]


def test_upsert_inserts_then_updates_keeping_first_seen(
    session: Session, make_site: MakeSite
) -> None:
    """A second poll updates master data and last_seen_at but keeps first_seen_at."""
    upsert_sites(session=session, sites=[make_site(1), make_site(2)], seen_at=T0)
    later = T0 + timedelta(minutes=1)
    upsert_sites(session=session, sites=[make_site(1, name="Renamed")], seen_at=later)
    session.commit()
    site = session.get(Site, 1)
    assert site is not None
    assert (site.name, site.first_seen_at, site.last_seen_at) == ("Renamed", T0, later)
    assert (site.capacity_kwh, site.rated_charge_kw, site.rated_discharge_kw) == (200, 90, 100)
    assert _site_ids(session) == [1, 2]


def test_absent_sites_are_marked_and_return_when_seen_again(
    session: Session, make_site: MakeSite
) -> None:
    """A site missing from a portfolio poll is marked absent, and present again on return."""
    upsert_sites(session=session, sites=[make_site(1), make_site(2)], seen_at=T0)
    later = T0 + timedelta(minutes=1)
    upsert_sites(session=session, sites=[make_site(1)], seen_at=later)
    absent = mark_absent_sites(session=session, present_ids=[1], seen_at=later)
    session.commit()
    assert absent == [2]
    assert _site_ids(session) == [1]
    assert _site_ids(session, present=None) == [1, 2]
    upsert_sites(session=session, sites=[make_site(2)], seen_at=later + timedelta(minutes=1))
    session.commit()
    assert _site_ids(session) == [1, 2]


def test_measurements_range_query(session: Session, make_site: MakeSite) -> None:
    """measurement_page returns one site's measurements in [start, end), oldest first."""
    upsert_sites(session=session, sites=[make_site(1), make_site(2)], seen_at=T0)
    for minute in range(10):
        at = T0 + timedelta(minutes=minute)
        sites = [make_site(1, soc=minute, power=-minute), make_site(2, soc=99)]
        assert record_measurements(session=session, sites=sites, measured_at=at) == 2
    session.commit()
    rows = measurement_page(
        session=session, site_id=1, start=T0 + timedelta(minutes=3), end=T0 + timedelta(minutes=6)
    ).items
    assert [(r.measured_at, r.soc_pct, r.power_kw) for r in rows] == [
        (T0 + timedelta(minutes=m), m, -m) for m in (3, 4, 5)
    ]


def test_a_measurement_is_stored_once_per_instant(session: Session, make_site: MakeSite) -> None:
    """Recording the same site and instant twice keeps the first row and reports no new one."""
    upsert_sites(session=session, sites=[make_site(1)], seen_at=T0)
    assert record_measurements(session=session, sites=[make_site(1, soc=10)], measured_at=T0) == 1
    assert record_measurements(session=session, sites=[make_site(1, soc=20)], measured_at=T0) == 0
    session.commit()
    second = T0 + timedelta(seconds=1)
    rows = measurement_page(session=session, site_id=1, start=T0, end=second).items
    assert [r.soc_pct for r in rows] == [10]


def test_large_portfolios_are_written_in_chunks(session: Session, make_site: MakeSite) -> None:
    """Thousands of sites in one upsert stay under every database's parameter limit."""
    sites = [make_site(site_id) for site_id in range(1, 3001)]
    assert upsert_sites(session=session, sites=sites, seen_at=T0) == 3000
    assert record_measurements(session=session, sites=sites, measured_at=T0) == 3000
    session.commit()
    assert len(_site_ids(session)) == 3000
