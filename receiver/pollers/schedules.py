"""The planned (ExAnte) and executed (ExPost) schedules of every site.

ExAnte tells how far ahead each site is planned (the schedule horizon) and which entries
are still InProgress close to their start; ExPost brings the final statuses of past
entries into the history, for the entries whose webhooks were lost. Both feed the same
forward-only status store as the webhooks, so a poll never undoes a newer status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from receiver.cellect.models import TimeSeriesResult
from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext
from receiver.storage.schedules import StatusChange, apply_entry

# ExAnte windows stay a little inside the vendor's 48 h, so clock skew cannot push
# them over the limit (30092).
EX_ANTE_SPAN = timedelta(hours=48) - timedelta(minutes=1)


def _store(site_id: int, results: Sequence[TimeSeriesResult], observed_at: datetime) -> Any:
    def work(session: Session) -> list[StatusChange]:
        changes = []
        for result in results:
            change = apply_entry(
                session=session,
                site_id=site_id,
                start=result.start_date,
                end=result.end_date,
                status=result.implementation_status,
                observed_at=observed_at,
                source="poll",
                power_kw=result.ess_power_ac,
            )
            if change is not None:
                changes.append(change)
        return changes

    return work


class _SchedulePoller(Poller):
    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    async def poll(self) -> None:
        await self.context.for_each_site(self.context.fleet.site_ids, self._site)

    async def fetch(self, site_id: int, now: datetime) -> list[TimeSeriesResult]:
        raise NotImplementedError

    async def _site(self, site_id: int) -> None:
        now = self.clock.now()
        results = await self.fetch(site_id, now)
        changes: list[StatusChange] = await self.context.write(_store(site_id, results, now))
        for change in changes:
            self.context.fleet.status_changed(site_id, change.start, change.end, change.status)
        self.seen(site_id, results)

    def seen(self, site_id: int, results: list[TimeSeriesResult]) -> None:
        """Hook for what a subclass learns from a site's results beyond the statuses."""


class ExAntePoller(_SchedulePoller):
    name = "ex_ante"

    async def fetch(self, site_id: int, now: datetime) -> list[TimeSeriesResult]:
        return await self.context.client.ex_ante(site_id, now, now + EX_ANTE_SPAN)

    def seen(self, site_id: int, results: list[TimeSeriesResult]) -> None:
        self.context.fleet.schedule_polled(site_id, results)


class ExPostPoller(_SchedulePoller):
    """Reads back a window that overlaps the previous one, so nothing falls between polls."""

    name = "ex_post"

    async def fetch(self, site_id: int, now: datetime) -> list[TimeSeriesResult]:
        start = now - timedelta(seconds=3 * self.interval_s)
        return await self.context.client.ex_post(site_id, start, now - timedelta(seconds=1))
