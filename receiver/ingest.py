"""Group commit: many concurrent webhook deliveries, one database transaction.

Each request hands its delivery to `GroupCommitter.submit` and waits. The writer loop
takes everything queued so far (up to `max_batch`) and commits it as one transaction
(`commit(items)`, awaited), and only then resolves every waiting request. While a batch
commits, the next one gathers, so under load the cost of an fsync is shared by the whole
batch; with a single request in flight it is one commit. Up to `max_in_flight` batches
may be committing at once — for a committer that takes them in order, like the writer
process (receiver.webhook_writer), so that it never waits for the event loop between
two batches. A failed commit fails every request of its batch: none of them is
acknowledged, and none is half-stored because the batch is one transaction.

`on_committed(results)` runs on the event loop once per committed batch, before the
requests are answered: what the rest of the monitor learns from a batch (metrics, the
fleet picture, the alert wake-up) it learns once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class CommitterClosed(RuntimeError):
    """The committer is shutting down and takes no more work."""


class GroupCommitter(Generic[T, R]):
    """Runs `commit(items) -> results` (one transaction) over batches of submitted items."""

    def __init__(
        self,
        commit: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 512,
        max_in_flight: int = 1,
        on_committed: Callable[[list[R]], None] | None = None,
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(max_in_flight)
        self._on_committed = on_committed
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
            results = await self._commit([item for item, _ in batch])
        except BaseException as exc:  # a failed commit, or the writer being stopped
            failure = exc if isinstance(exc, Exception) else CommitterClosed("writer stopped")
            _fail(batch, failure)
            if failure is not exc:
                raise
            return
        finally:
            self._slots.release()
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
        committing: set[asyncio.Task[None]] = set()
        try:
            while True:
                first = await self._queue.get()
                try:
                    await self._slots.acquire()  # meanwhile the batch goes on gathering
                except BaseException:
                    _fail([first], CommitterClosed("the webhook writer stopped"))
                    raise
                batch = self._take_batch(first)
                if not batch:
                    self._slots.release()
                    continue
                task = asyncio.create_task(self._commit_batch(batch))
                committing.add(task)
                task.add_done_callback(committing.discard)
        finally:
            self._closed = True
            for task in committing:
                task.cancel()
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(CommitterClosed("the webhook writer stopped"))


def _fail(batch: list[tuple[T, asyncio.Future[R]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
