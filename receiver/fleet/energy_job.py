"""The energy job: each entry that has run, once its measurements are in, gets its
delivered against planned energy computed and kept (`entry_energy`).

Every `interval_s` (the portfolio interval, on the monitor's clock) it takes the entries
that ran (2 Implemented, 3 ImplementationFailed), whose planned power is known and that
ended between `LOOKBACK` and `grace_s` ago without a row yet; estimates each from the
site's measurements (receiver.analytics.delivery: power samples, else the SoC change);
stores the rows; and feeds the sites' tracking (counters, gauge, the alert's input).
`grace_s` leaves time for the poll after the entry's end, which the SoC fallback reads.

It survives restarts (what is missing is found again, up to two days back), it is
idempotent (a row per entry, unique), and with several replicas each computes the sites
of its own buckets, fenced by their leases, and tells the others by the fleet feed in
the same transaction; should two compute one entry, the unique key keeps one row and
only the one that inserted it counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import groupby

import anyio.to_thread
from sqlalchemy import Engine
from sqlmodel import Session

from receiver.analytics.delivery import Sample, estimate
from receiver.cellect.clock import Clock
from receiver.coordination import feed
from receiver.coordination.errors import LeaseLost
from receiver.coordination.replica import Replica
from receiver.fleet.tracking import Tracking
from receiver.runtime import waiting
from receiver.storage import energy
from receiver.storage.energy import EndedEntry, EnergyRow
from receiver.storage.engine import session_factory

log = logging.getLogger(__name__)
LOOKBACK = timedelta(days=2)  # how far back missing entries are computed (ExPost's reach)


class EnergyJob:
    """Computes the delivered energy of entries that have run (module docstring)."""

    def __init__(
        self,
        *,
        database: Engine,
        clock: Clock,
        tracking: Tracking,
        replica: Replica | None,
        interval_s: float,
        max_gap_s: float,
        grace_s: float,
    ) -> None:
        self.database, self.clock, self.tracking = database, clock, tracking
        self.replica = replica
        self.interval_s, self.max_gap_s, self.grace_s = interval_s, max_gap_s, grace_s
        self.computed = 0  # rows this job inserted since the start

    def restore(self) -> None:
        """Read the sites' tracking windows back from the history (blocking)."""
        since = self.clock.now() - LOOKBACK
        with session_factory(self.database)() as session:
            found = energy.latest_energy(
                session=session, per_site=self.tracking.window, ended_after=since
            )
        self.tracking.restore(
            (r.site_id, r.end, r.planned_kwh, r.delivered_kwh)
            for rows in found.values()
            for r in rows
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Compute every `interval_s` until `stop` is set; a failed pass is logged."""
        await anyio.to_thread.run_sync(self.restore)
        while not stop.is_set():
            try:
                await self.once()
            except LeaseLost as exc:  # the bucket's new owner computes it
                log.info("entry energy not stored, a lease moved: %s", exc)
            except Exception as exc:
                log.warning("entry energy pass failed: %s", type(exc).__name__)
            moment = self.clock.now() + timedelta(seconds=self.interval_s)
            await waiting.until(self.clock, moment, stop)

    async def once(self) -> list[EnergyRow]:
        """One pass: the rows it inserted, already fed to the tracking."""
        now = self.clock.now()
        inserted = await anyio.to_thread.run_sync(self._compute, now)
        self.computed += len(inserted)
        self.tracking.add((r.site_id, r.end, r.planned_kwh, r.delivered_kwh) for r in inserted)
        return inserted

    def _compute(self, now: datetime) -> list[EnergyRow]:
        with session_factory(self.database)() as session:
            ended = energy.ended_without_energy(
                session=session,
                ended_after=now - LOOKBACK,
                ended_before=now - timedelta(seconds=self.grace_s),
            )
            if self.replica is not None:
                ended = [e for e in ended if self.replica.owns(e.site_id)]
            if not ended:
                return []
            rows = self._estimate(session, ended)
            inserted = energy.record_energy(session=session, rows=rows, computed_at=now)
            if self.replica is not None and inserted:
                self.replica.publish(session, "energy", feed.energy_body(inserted))
                self.replica.fence(session, sites={r.site_id for r in inserted})
            session.commit()
            return inserted

    def _estimate(self, session: Session, ended: Sequence[EndedEntry]) -> list[EnergyRow]:
        capacities = energy.capacities(session=session, site_ids={e.site_id for e in ended})
        gap = timedelta(seconds=self.max_gap_s)
        rows: list[EnergyRow] = []
        by_site = sorted(ended, key=lambda e: (e.site_id, e.end))
        for site_id, group in groupby(by_site, key=lambda e: e.site_id):
            entries = list(group)
            lo = min(e.start for e in entries) - gap
            hi = max(e.end for e in entries) + gap
            measured = energy.measurements_between(session=session, site_id=site_id, lo=lo, hi=hi)
            samples = [Sample(at, power, soc) for at, power, soc in measured]
            for e in entries:
                delivery = estimate(
                    samples,
                    start=e.start,
                    end=e.end,
                    power_kw=e.power_kw,
                    max_gap_s=self.max_gap_s,
                    capacity_kwh=capacities.get(site_id),
                )
                rows.append(
                    EnergyRow(site_id, e.start, e.end, e.generation, delivery.planned_kwh,
                              delivery.delivered_kwh, str(delivery.method), delivery.samples)
                )  # fmt: skip
        return rows
