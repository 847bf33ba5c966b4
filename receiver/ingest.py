"""Group commit: many concurrent webhook deliveries, one database transaction.

Each request hands its delivery to `GroupCommitter.submit` and waits. A single writer
task takes everything queued so far (up to `max_batch`), commits it in one transaction
in a worker thread, and only then resolves every waiting request. While one batch
commits, the next one gathers, so under load the cost of an fsync is shared by the whole
batch; with a single request in flight it is one commit, as before. A failed commit
fails every request of its batch: none of them is acknowledged, and none is half-stored
because the batch is one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio.to_thread

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class CommitterClosed(RuntimeError):
    """The committer is shutting down and takes no more work."""


class GroupCommitter(Generic[T, R]):
    """Runs `commit(items) -> results` (one transaction) over batches of submitted items."""

    def __init__(
        self,
        commit: Callable[[list[T]], list[R]],
        *,
        max_batch: int = 512,
        on_committed: Callable[[list[R]], None] | None = None,
    ) -> None:
        self._commit = commit
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._closed = False
        self.batches = 0

    async def submit(self, item: T) -> R:
        """Queue `item` and return its result once its batch is committed."""
        if self._closed:
            raise CommitterClosed("the webhook writer is shutting down")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))  # unbounded: never waits
        return await future

    def _take_batch(self, first: tuple[T, asyncio.Future[R]]) -> list[tuple[T, asyncio.Future[R]]]:
        batch = [first]
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return [(item, fut) for item, fut in batch if not fut.cancelled()]

    async def _commit_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await anyio.to_thread.run_sync(self._commit, [item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        if self._on_committed is not None:
            try:
                self._on_committed(results)
            except Exception:  # stored is stored: the requests are still acknowledged
                log.exception("handling a committed webhook batch failed")
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def run(self) -> None:
        """The writer loop; runs until cancelled, then fails what is still queued."""
        try:
            while True:
                batch = self._take_batch(await self._queue.get())
                if batch:
                    await self._commit_batch(batch)
        finally:
            self._closed = True
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(CommitterClosed("the webhook writer stopped"))
