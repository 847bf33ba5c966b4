"""Repository functions for sites and their measurements (SoC and power over time).

Keyword-only; each takes the caller's `session` and commits nothing: the caller owns
the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from receiver.cellect.models import SiteInformation
from receiver.storage.dialect import chunks, insert_for
from receiver.storage.tables import Measurement, Site

# Master-data columns a later poll overwrites (first_seen_at never changes).
_SITE_UPDATES = (
    "name",
    "country",
    "latitude",
    "longitude",
    "capacity_kwh",
    "rated_charge_kw",
    "rated_discharge_kw",
    "last_seen_at",
    "present",
)


def _site_row(site: SiteInformation, seen_at: datetime) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "name": site.site_name,
        "country": site.country,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "capacity_kwh": site.ess_installed_energy_capacity,
        "rated_charge_kw": site.ess_power_ac_rated_charge,
        "rated_discharge_kw": site.ess_power_ac_rated_discharge,
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
        "present": True,
    }


def upsert_sites(*, session: Session, sites: Sequence[SiteInformation], seen_at: datetime) -> int:
    """Insert new sites, update known ones (marking them present); returns how many rows."""
    # One row per site id: PostgreSQL refuses to upsert the same row twice in a statement.
    rows = list({site.site_id: _site_row(site, seen_at) for site in sites}.values())
    # One statement, executed over many parameter sets: compiled once (and cached),
    # where a multi-row VALUES of 500 sites was compiled afresh for every chunk (15 %
    # of the monitor's CPU while it polled 10,000 sites, docs/performance.md).
    stmt = insert_for(session, Site)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id"],
        set_={name: stmt.excluded[name] for name in _SITE_UPDATES},
    )
    for chunk in chunks(rows):
        session.execute(stmt, list(chunk))
    return len(rows)


def mark_absent_sites(
    *, session: Session, present_ids: Iterable[int], seen_at: datetime
) -> list[int]:
    """Mark the sites missing from the portfolio seen at `seen_at` as absent; returns them."""
    present = set(present_ids)
    known = session.exec(select(Site.site_id).where(col(Site.present))).all()
    absent = sorted(site_id for site_id in known if site_id not in present)
    for chunk in chunks(absent):
        session.exec(
            update(Site)
            .where(col(Site.site_id).in_(chunk), col(Site.last_seen_at) < seen_at)
            .values(present=False)
        )
    return absent


def record_measurements(
    *, session: Session, sites: Sequence[SiteInformation], measured_at: datetime
) -> int:
    """Store each site's SoC and power at `measured_at` (sites must exist); returns rows new."""
    rows = {
        site.site_id: {
            "site_id": site.site_id,
            "measured_at": measured_at,
            "soc_pct": site.ess_soc,
            "power_kw": site.ess_power,
        }
        for site in sites
    }
    stored = 0
    stmt = insert_for(session, Measurement).on_conflict_do_nothing(
        index_elements=["site_id", "measured_at"]
    )
    # RETURNING counts the new rows (rowcounts of many parameter sets are -1 on some
    # drivers); SQLAlchemy batches the parameter sets into multi-row statements itself.
    returning = stmt.returning(col(Measurement.id))
    for chunk in chunks(list(rows.values())):
        stored += len(session.execute(returning, list(chunk)).all())
    return stored
