"""Availability events of every site, stored once each however often they are polled."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from receiver.cellect.models import AvailabilityEvent
from receiver.coordination import feed
from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext, newly_tracked
from receiver.storage.events import upsert_fleet_events
from receiver.storage.fleet_state import StoredFleet


class EventsPoller(Poller):
    name = "events"

    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    async def poll(self) -> None:
        fleet = self.context.fleet
        # Sites only webhooks named: the vendor answering their events makes them ours
        # (a 403/404 leaves them untracked: fetch_each skips sites that are not ours).
        candidates = fleet.take_candidates()
        asked = set(candidates)
        failure = await self.context.fetch_each(
            [*fleet.known_site_ids, *candidates],
            self.context.client.availability_events,
            lambda fetched: self._store(fetched, asked),
        )
        if failure is not None:
            raise failure

    async def _store(
        self, fetched: dict[int, list[AvailabilityEvent]], candidates: set[int]
    ) -> None:
        fleet, seen_at = self.context.fleet, self.clock.now()
        confirmed = {site_id for site_id in fetched if site_id in candidates}

        def store(session: Session) -> StoredFleet | None:
            upsert_fleet_events(session=session, events_by_site=fetched, seen_at=seen_at)
            return newly_tracked(session, fleet, seen_at, confirmed)

        def tell(_: StoredFleet | None) -> list[tuple[str, dict[str, Any]]]:
            return [("events", feed.events_body(seen_at, fetched))]

        stored = await self.context.write(store, sites=fetched, feed=tell)
        if stored is not None:
            fleet.restore(stored, also=confirmed)
        for site_id, events in fetched.items():
            fleet.availability_polled(site_id, events)
