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
from receiver.coordination import feed
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
        plans = self.plans_to_tell(fetched) if self.context.replica is not None else {}

        def tell(changes: list[StatusChange]) -> list[tuple[str, dict[str, Any]]]:
            told = [("status", feed.status_body(changes, None))] if changes else []
            return told + ([("plan", feed.plan_body(plans))] if plans else [])

        changes = await self.context.write(_store(fetched), sites=fetched, feed=tell)
        self.told(plans)
        self.context.fleet.statuses_changed(changes)
        for site_id, (_, results) in fetched.items():
            self.seen(site_id, results)

    def plans_to_tell(self, fetched: Fetched) -> dict[int, list[TimeSeriesResult]]:
        """Hook: the plans the other replicas are to learn from this chunk (ExAnte)."""
        return {}

    def told(self, plans: dict[int, list[TimeSeriesResult]]) -> None:
        """Hook: `plans` went out with the chunk's transaction."""

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

    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        # What each site's plan was when last told to the other replicas (a hash): a plan
        # goes into the fleet feed only when it changed, not with every poll.
        self._told: dict[int, int] = {}

    async def poll(self) -> None:
        if self.context.replica is not None:  # sites moved away: tell them afresh if back
            owns = self.context.replica.owns
            self._told = {s: h for s, h in self._told.items() if owns(s)}
        await super().poll()

    def seen(self, site_id: int, results: list[TimeSeriesResult]) -> None:
        self.context.fleet.schedule_polled(site_id, results)

    def plans_to_tell(self, fetched: Fetched) -> dict[int, list[TimeSeriesResult]]:
        return {
            site_id: results
            for site_id, (_, results) in fetched.items()
            if self._told.get(site_id) != _digest(results)
        }

    def told(self, plans: dict[int, list[TimeSeriesResult]]) -> None:
        self._told.update((site_id, _digest(results)) for site_id, results in plans.items())


def _digest(results: list[TimeSeriesResult]) -> int:
    return hash(tuple((r.start_date, r.end_date, r.implementation_status) for r in results))


class ExPostPoller(_SchedulePoller):
    """Reads back a window that overlaps the previous one, so nothing falls between polls.

    After downtime (`catch_up_from`: when the monitor was last at work, read at start)
    the first successful round reads back from then, at most MAX_CATCH_UP: an entry that
    failed while the monitor was down, its webhook given up by Cellect, still counts.
    """

    name = "ex_post"
    catch_up_from: datetime | None = None

    def __init__(self, context: PollContext, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        # One of several replicas: the sites it read back in its last round. A site new
        # to it came with a bucket taken over from another replica — one that may have
        # crashed a while before its lease expired — so it is read back MAX_CATCH_UP.
        self._read_back: set[int] = set()
        self._reading: set[int] = set()

    async def poll(self) -> None:
        self._reading = set()
        await super().poll()

    async def fetch(self, site_id: int, now: datetime) -> list[TimeSeriesResult]:
        overlap = timedelta(seconds=self.interval_s)
        start = now - 3 * overlap
        if self.catch_up_from is not None:
            start = min(start, max(self.catch_up_from - overlap, now - MAX_CATCH_UP))
        elif self.context.replica is not None and site_id not in self._read_back:
            start = now - MAX_CATCH_UP
        self._reading.add(site_id)
        return await self.context.client.ex_post(site_id, start, now - timedelta(seconds=1))

    def _succeeded(self) -> None:
        self.catch_up_from = None  # every site was read back: windows as usual from now
        self._read_back = self._reading
        super()._succeeded()
