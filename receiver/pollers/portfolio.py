"""PortfolioOverview: master data, SoC and power of every site (default every 60 s)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext
from receiver.storage.sites import mark_absent_sites, record_measurements, upsert_sites


class PortfolioPoller(Poller):
    name = "portfolio"

    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    async def poll(self) -> None:
        sites = await self.context.client.portfolio_overview()
        seen_at = self.clock.now()

        def store(session: Session) -> None:
            upsert_sites(session=session, sites=sites, seen_at=seen_at)
            mark_absent_sites(
                session=session, present_ids=[s.site_id for s in sites], seen_at=seen_at
            )
            record_measurements(session=session, sites=sites, measured_at=seen_at)

        await self.context.write(store)
        self.context.fleet.portfolio_polled(sites)
