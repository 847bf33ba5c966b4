"""Availability events of every site, stored once each however often they are polled."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext
from receiver.storage.events import upsert_availability_events


class EventsPoller(Poller):
    name = "events"

    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    async def poll(self) -> None:
        await self.context.for_each_site(self.context.fleet.site_ids, self._site)

    async def _site(self, site_id: int) -> None:
        events = await self.context.client.availability_events(site_id)
        seen_at = self.clock.now()

        def store(session: Session) -> int:
            return upsert_availability_events(
                session=session, site_id=site_id, events=events, seen_at=seen_at
            )

        await self.context.write(store)
        self.context.fleet.availability_polled(site_id, events)
