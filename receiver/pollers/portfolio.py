"""PortfolioOverview: master data, SoC and power of every site (default every 60 s)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlmodel import Session

from receiver.coordination import feed
from receiver.fleet.picture import Fleet
from receiver.metrics.sites import SiteSnapshot
from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext, newly_tracked
from receiver.runtime.memory import release_free_memory
from receiver.storage.fleet_state import StoredFleet
from receiver.storage.sites import mark_absent_sites, record_measurements, upsert_sites


class PortfolioPoller(Poller):
    name = "portfolio"

    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    async def poll(self) -> None:
        if not self.context.leads("portfolio"):
            return  # another replica makes the one call for all sites (the feed tells us)
        sites = await self.context.client.portfolio_overview()
        seen_at = self.clock.now()
        fleet = self.context.fleet
        # Sites the fleet has not tracked (new to the partner, or heard of only while not
        # in the portfolio): their stored reports join the live picture now.
        new = set(fleet.unknown(s.site_id for s in sites))

        def store(session: Session) -> StoredFleet | None:
            upsert_sites(session=session, sites=sites, seen_at=seen_at)
            mark_absent_sites(
                session=session, present_ids=[s.site_id for s in sites], seen_at=seen_at
            )
            record_measurements(session=session, sites=sites, measured_at=seen_at)
            return newly_tracked(session, fleet, seen_at, new)

        def tell(_: StoredFleet | None) -> list[tuple[str, dict[str, Any]]]:
            return [("portfolio", feed.portfolio_body(seen_at, sites))]

        stored = await self.context.write(store, singleton="portfolio", feed=tell)
        if stored is not None:  # its sites' gauges: with the snapshots below
            fleet.restore(stored, site_gauges=False)
        snapshots = fleet.portfolio_polled(sites)
        sites.clear()  # the parsed answer: garbage for release_free_memory to hand back
        await anyio.to_thread.run_sync(_publish, fleet, snapshots)


def _publish(fleet: Fleet, snapshots: list[SiteSnapshot]) -> None:
    """The sites' gauges (in a worker thread), then the poll's garbage back to the system."""
    fleet.metrics.update_sites(snapshots)
    snapshots.clear()
    release_free_memory()
