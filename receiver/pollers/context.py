"""What every poller needs: the vendor client, the database, the live fleet picture.

Per-site pollers fetch concurrently (`fetch_each`) and then write the whole round in
one transaction (`write`): at 10,000 sites a transaction and a thread hop per site
cost more than the requests themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session

from receiver.cellect.errors import CellectApiError
from receiver.fleet.picture import Fleet
from receiver.storage.engine import session_factory
from receiver.storage.fleet_state import StoredFleet, load_fleet
from receiver.vendor.client import CellectClient, RequestNotSent

T = TypeVar("T")
GONE = frozenset({403, 404})


@dataclass
class PollContext:
    client: CellectClient
    engine: Engine
    fleet: Fleet
    concurrency: int = 16

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in a worker thread and commit it as one transaction."""

        def run() -> T:
            with session_factory(self.engine)() as session:
                result = work(session)
                session.commit()
                return result

        return await anyio.to_thread.run_sync(run)

    async def fetch_each(
        self, site_ids: Iterable[int], fetch: Callable[[int], Awaitable[T]]
    ) -> tuple[dict[int, T], BaseException | None]:
        """Fetch every site with at most `concurrency` requests in flight.

        A site the API no longer serves to us (403/404: removed from the portfolio,
        handed to another partner) is skipped rather than failing every round.
        Returns what came back, by site, and the first failure (None if none): one
        site's failure does not stop the others, and the caller stores what came back
        (in one transaction, not one per site) before it reports the failure. But once
        the client holds requests back (its circuit open, or a long Retry-After pause:
        RequestNotSent), the sites not yet started are not tried: the round fails fast.
        """
        fetched: dict[int, T] = {}
        failures: list[BaseException] = []
        held_back: list[RequestNotSent] = []
        # `concurrency` workers take the next site from one iterator: a task per site
        # (20,000 tasks, coroutines and contexts alive at once for two per-site rounds
        # over 10,000 sites) cost memory and garbage-collector walks for nothing.
        pending = iter(site_ids)

        async def worker() -> None:
            for site_id in pending:
                if held_back:
                    return
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

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return fetched, (failures[0] if failures else None)


def newly_tracked(
    session: Session, fleet: Fleet, now: datetime, site_ids: set[int]
) -> StoredFleet | None:
    """What the database knows of sites the fleet starts tracking now (after this poll's
    writes, in its transaction), to restore into the fleet; None when there are none."""
    if not site_ids:
        return None
    session.flush()
    return load_fleet(session=session, now=now, failure_hold=fleet.failure_hold, site_ids=site_ids)
