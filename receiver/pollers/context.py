"""What every poller needs: the vendor client, the database, the live fleet picture."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session

from receiver.client import CellectClient
from receiver.fleet import Fleet
from receiver.storage.engine import session_factory

T = TypeVar("T")


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

    async def for_each_site(
        self, site_ids: Iterable[int], visit: Callable[[int], Awaitable[None]]
    ) -> None:
        """Visit every site with at most `concurrency` requests in flight.

        One site's failure does not stop the others; the first failure is raised at the
        end so the poller records the round as failed.
        """
        limit = asyncio.Semaphore(self.concurrency)

        async def bounded(site_id: int) -> None:
            async with limit:
                await visit(site_id)

        results = await asyncio.gather(
            *(bounded(site_id) for site_id in site_ids), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
