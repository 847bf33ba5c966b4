"""What every poller needs: the vendor client, the database, the live fleet picture.

Per-site pollers fetch concurrently (`fetch_each`) and store what came back in chunks
of `CHUNK` sites, one transaction each (`write`): at 10,000 sites a transaction and a
thread hop per site cost more than the requests themselves, and a whole round held until
one write at its end kept 10,000 sites' parsed answers alive at once (memory, and every
full garbage collection walking them: docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session

from receiver.cellect.errors import CellectApiError
from receiver.coordination.errors import LeaseLost
from receiver.coordination.replica import Replica
from receiver.fleet.picture import Fleet
from receiver.storage.engine import session_factory
from receiver.storage.fleet_state import StoredFleet, load_fleet
from receiver.vendor.client import CellectClient, RequestNotSent

log = logging.getLogger(__name__)
T = TypeVar("T")
GONE = frozenset({403, 404})
CHUNK = 500  # sites a per-site round stores (and publishes) at a time


@dataclass
class PollContext:
    client: CellectClient
    engine: Engine
    fleet: Fleet
    concurrency: int = 16
    chunk: int = CHUNK
    # One of several replicas (PostgreSQL): it polls only the sites of its buckets, fences
    # its writes by their leases and tells the others what it learned (the fleet feed).
    # None: the only monitor, which polls everything.
    replica: Replica | None = None

    def mine(self, site_ids: Iterable[int]) -> list[int]:
        """Those of `site_ids` this monitor polls."""
        return list(site_ids) if self.replica is None else self.replica.mine(site_ids)

    def leads(self, kind: str) -> bool:
        """Whether this monitor does the singleton job `kind` (always, alone)."""
        return self.replica is None or self.replica.leads(kind)

    async def write(
        self,
        work: Callable[[Session], T],
        *,
        sites: Iterable[int] = (),
        singleton: str | None = None,
        feed: Callable[[T], list[tuple[str, dict[str, Any]]]] | None = None,
    ) -> T:
        """Run `work(session)` in a worker thread and commit it as one transaction.

        One of several replicas: the write is fenced by the leases of `sites`' buckets
        and of `singleton` (`LeaseLost`, nothing written, when one is no longer held),
        and the feed entries `feed(result)` go out in the same transaction."""
        replica = self.replica

        def run() -> T:
            with session_factory(self.engine)() as session:
                result = work(session)
                if replica is not None:
                    for kind, body in feed(result) if feed is not None else ():
                        replica.publish(session, kind, body)
                    replica.fence(session, sites=sites, singleton=singleton)
                session.commit()
                return result

        return await anyio.to_thread.run_sync(run)

    async def fetch_each(
        self,
        site_ids: Iterable[int],
        fetch: Callable[[int], Awaitable[T]],
        store: Callable[[dict[int, T]], Awaitable[None]],
    ) -> BaseException | None:
        """Fetch every site with at most `concurrency` requests in flight, and hand what
        came back to `store`, `self.chunk` sites at a time (one call at a time, in the order
        the chunks filled; the last one may be smaller, and none is empty).

        One of several replicas fetches only the sites of its buckets — those it still
        holds when a site's turn comes: a bucket handed to another replica during the
        round (one joined) is polled by its new owner, not fetched here as well only to
        be dropped — and stores only those it still holds when their chunk is stored.

        A site the API no longer serves to us (403/404: removed from the portfolio,
        handed to another partner) is skipped rather than failing every round.
        Returns the first failure (None if none): one site's failure does not stop the
        others, and what came back is stored before the caller reports the failure. But
        once the client holds requests back (its circuit open, or a long Retry-After
        pause: RequestNotSent), the sites not yet started are not tried: the round fails
        fast. A failure of `store` itself ends the round and is raised.
        """
        fetched: dict[int, T] = {}
        failures: list[BaseException] = []
        held_back: list[RequestNotSent] = []
        storing = asyncio.Lock()
        # `concurrency` workers take the next site from one iterator: a task per site
        # (20,000 tasks, coroutines and contexts alive at once for two per-site rounds
        # over 10,000 sites) cost memory and garbage-collector walks for nothing.
        pending = iter(self.mine(site_ids))

        async def spill() -> None:
            nonlocal fetched
            batch, fetched = fetched, {}
            if self.replica is not None:  # buckets may have moved since the round began
                batch = {s: v for s, v in batch.items() if self.replica.owns(s)}
            if batch:
                async with storing:  # a worker waiting here is backpressure on the fetches
                    try:
                        await store(batch)
                    except LeaseLost as exc:  # their new owner polls them: nothing lost
                        log.info("a poll's chunk was dropped, its lease moved: %s", exc)

        async def worker() -> None:
            for site_id in pending:
                if held_back:
                    return
                if self.replica is not None and not self.replica.owns(site_id):
                    continue  # its bucket moved away since the round began
                try:
                    fetched[site_id] = await fetch(site_id)
                except CellectApiError as exc:
                    if exc.http_status not in GONE:
                        failures.append(exc)
                except RequestNotSent as exc:
                    held_back.append(exc)
                    failures.append(exc)
                except Exception as exc:
                    failures.append(exc)
                if len(fetched) >= self.chunk:
                    await spill()

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        await spill()
        return failures[0] if failures else None


def newly_tracked(
    session: Session, fleet: Fleet, now: datetime, site_ids: set[int]
) -> StoredFleet | None:
    """What the database knows of sites the fleet starts tracking now (after this poll's
    writes, in its transaction), to restore into the fleet; None when there are none."""
    if not site_ids:
        return None
    session.flush()
    return load_fleet(session=session, now=now, failure_hold=fleet.failure_hold, site_ids=site_ids)
