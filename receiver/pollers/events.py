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
        client = self.context.client
        fetched, failure = await self.context.fetch_each(
            self.context.fleet.known_site_ids, client.availability_events
        )
        seen_at = self.clock.now()

        def store(session: Session) -> int:
            return sum(
                upsert_availability_events(
                    session=session, site_id=site_id, events=events, seen_at=seen_at
                )
                for site_id, events in fetched.items()
            )

        await self.context.write(store)
        for site_id, events in fetched.items():
            self.context.fleet.availability_polled(site_id, events)
        if failure is not None:
            raise failure
