"""The planned (ExAnte) and executed (ExPost) schedules of every site.

ExAnte tells how far ahead each site is planned (the schedule horizon) and which entries
are still InProgress close to their start; ExPost brings the final statuses of past
entries into the history, for the entries whose webhooks were lost. Both feed the same
status path as the webhooks: each poll is a snapshot of the slots it covers, matched
to the generations the monitor knows, so a poll never undoes a newer status.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from receiver.cellect.models import TimeSeriesResult
from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext
from receiver.storage.status import Observation, StatusChange, apply_observations, writer_for

# ExAnte windows stay a little inside the vendor's 48 h, so clock skew cannot push
# them over the limit (30092).
EX_ANTE_SPAN = timedelta(hours=48) - timedelta(minutes=1)
# How far back ExPost reads after downtime (one request a site; a longer outage
# backfills its last two days).
MAX_CATCH_UP = timedelta(hours=48)


Fetched = dict[int, tuple[datetime, list[TimeSeriesResult]]]


def _store(fetched: Fetched) -> Callable[[Session], list[StatusChange]]:
    """A chunk of the round's results as one snapshot per slot, applied in one
    transaction."""
    observations = [
        Observation(
            site_id,
            result.start_date,
            result.end_date,
            result.implementation_status,
            observed_at,
            power_kw=result.ess_power_ac,
        )
        for site_id, (observed_at, results) in fetched.items()
        for result in results
    ]

    def work(session: Session) -> list[StatusChange]:
        changes = apply_observations(
            session=session,
            observations=observations,
            source="poll",
            writer=writer_for(session),
        )
        return [change for _, change in changes]

    return work


class _SchedulePoller(Poller):
    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    async def poll(self) -> None:
        failure = await self.context.fetch_each(
            self.context.fleet.known_site_ids, self._fetch, self._store
        )
        if failure is not None:
            raise failure

    async def _store(self, fetched: Fetched) -> None:
        changes = await self.context.write(_store(fetched))
        self.context.fleet.statuses_changed(changes)
        for site_id, (_, results) in fetched.items():
            self.seen(site_id, results)

    async def _fetch(self, site_id: int) -> tuple[datetime, list[TimeSeriesResult]]:
        # Each site's window is taken when its request goes out (ExAnte must not start
        # in the past), and its results are observed as of then.
        now = self.clock.now()
        return now, await self.fetch(site_id, now)

    async def fetch(self, site_id: int, now: datetime) -> list[TimeSeriesResult]:
        raise NotImplementedError

    def seen(self, site_id: int, results: list[TimeSeriesResult]) -> None:
        """Hook for what a subclass learns from a site's results beyond the statuses."""


class ExAntePoller(_SchedulePoller):
    name = "ex_ante"

    async def fetch(self, site_id: int, now: datetime) -> list[TimeSeriesResult]:
        return await self.context.client.ex_ante(site_id, now, now + EX_ANTE_SPAN)

    def seen(self, site_id: int, results: list[TimeSeriesResult]) -> None:
        self.context.fleet.schedule_polled(site_id, results)


class ExPostPoller(_SchedulePoller):
    """Reads back a window that overlaps the previous one, so nothing falls between polls.

    After downtime (`catch_up_from`: when the monitor was last at work, read at start)
    the first successful round reads back from then, at most MAX_CATCH_UP: an entry that
    failed while the monitor was down, its webhook given up by Cellect, still counts.
    """

    name = "ex_post"
    catch_up_from: datetime | None = None

    async def fetch(self, site_id: int, now: datetime) -> list[TimeSeriesResult]:
        overlap = timedelta(seconds=self.interval_s)
        start = now - 3 * overlap
        if self.catch_up_from is not None:
            start = min(start, max(self.catch_up_from - overlap, now - MAX_CATCH_UP))
        return await self.context.client.ex_post(site_id, start, now - timedelta(seconds=1))

    def _succeeded(self) -> None:
        self.catch_up_from = None  # every site was read back: windows as usual from now
        super()._succeeded()
