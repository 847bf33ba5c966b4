"""Group commit: many concurrent webhook deliveries, one database transaction.

Each request hands its delivery to `GroupCommitter.submit` and waits. The writer loop
takes everything queued so far (up to `max_batch` items and `max_batch_bytes`) and
commits it as one transaction (`commit(items)`, awaited), and only then resolves every
waiting request. While a batch commits, the next one gathers, so under load the cost of
an fsync is shared by the whole batch; with a single request in flight it is one commit.
Up to `max_in_flight` batches may be committing at once — for a committer that takes
them in order, like the writer process (receiver.ingest.writer), so that it never
waits for the event loop between two batches.

Bounded whatever the senders do: the queue holds at most `max_queue` items and
`max_queue_bytes` (a full queue refuses at once, `QueueFull`), and a request waits at
most `timeout_s` for its commit (`CommitTimeout`; an item not yet taken into a batch is
then dropped, one already committing completes). A failed commit fails every request
of its batch, none half-stored; `commit` may also answer an exception for one item of
its batch, which fails that item's request alone.

`on_committed(results)` runs on the event loop once per committed batch, before the
requests are answered: what the rest of the monitor learns from a batch (metrics, the
fleet picture, the alert wake-up) it learns once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class CommitterClosed(RuntimeError):
    """The committer is shutting down and takes no more work."""


class QueueFull(RuntimeError):
    """The queue is at its bound (items or bytes): refused now rather than held."""


class CommitTimeout(RuntimeError):
    """The item was not committed within the timeout."""


@dataclass(frozen=True)
class Bounds:
    """How much the committer holds and waits: queue, batches, a request's patience."""

    max_queue: int = 10_000
    max_queue_bytes: int = 64 * 1024 * 1024
    max_batch: int = 512
    max_batch_bytes: int = 8 * 1024 * 1024
    max_in_flight: int = 1
    timeout_s: float | None = None


_Queued = tuple[T, int, "asyncio.Future[R]"]


class GroupCommitter(Generic[T, R]):
    """Runs `commit(items) -> results` (one transaction) over batches of submitted items."""

    def __init__(
        self,
        commit: Callable[[list[T]], Awaitable[list[R | Exception]]],
        *,
        bounds: Bounds | None = None,
        size: Callable[[T], int] = lambda _item: 0,
        on_committed: Callable[[list[R]], None] | None = None,
    ) -> None:
        self._commit = commit
        self.bounds = bounds or Bounds()
        self._size = size
        self._slots = asyncio.Semaphore(self.bounds.max_in_flight)
        self._on_committed = on_committed
        self._queue: deque[_Queued[T, R]] = deque()
        self._arrived = asyncio.Event()  # set while the queue is not empty
        self._closed = False
        self.queued_bytes = 0

    @property
    def queued(self) -> int:
        """Items waiting for a batch."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Queue `item` and return its result once its batch is committed."""
        if self._closed:
            raise CommitterClosed("the webhook writer is shutting down")
        size, bounds = self._size(item), self.bounds
        if self.queued >= bounds.max_queue or self.queued_bytes + size > bounds.max_queue_bytes:
            raise QueueFull("the webhook queue is full")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, size, future))
        self.queued_bytes += size
        self._arrived.set()
        try:
            return await asyncio.wait_for(future, bounds.timeout_s)
        except TimeoutError:  # wait_for cancelled the future: a batch not yet taken skips it
            self._forget(future)
            raise CommitTimeout(f"not committed within {bounds.timeout_s:g} s") from None

    def _forget(self, future: asyncio.Future[R]) -> None:
        """Drop an abandoned item still queued, so that it holds no room (a stalled writer
        must not keep the queue full of requests nobody waits for)."""
        for index, queued in enumerate(self._queue):
            if queued[2] is future:
                del self._queue[index]
                self.queued_bytes -= queued[1]
                if not self._queue:
                    self._arrived.clear()
                return

    def _take(self) -> _Queued[T, R]:
        queued = self._queue.popleft()
        self.queued_bytes -= queued[1]
        if not self._queue:
            self._arrived.clear()
        return queued

    def _take_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch: at least one item, within the count and byte bounds."""
        batch, size, bounds = [self._take()], 0, self.bounds
        size = batch[0][1]
        while self._queue and len(batch) < bounds.max_batch:
            if size + self._queue[0][1] > bounds.max_batch_bytes:
                break
            batch.append(self._take())
            size += batch[-1][1]
        return [(item, fut) for item, _, fut in batch if not fut.cancelled()]

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
        stored = [r for r in results if not isinstance(r, Exception)]
        if self._on_committed is not None and stored:
            try:
                self._on_committed(stored)
            except Exception:  # stored is stored: the requests are still acknowledged
                log.exception("handling a committed webhook batch failed")
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def run(self) -> None:
        """The writer loop; runs until cancelled, then fails what is still queued."""
        committing: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._arrived.wait()
                await self._slots.acquire()  # meanwhile the batch goes on gathering
                if not self._queue:  # every waiting item timed out meanwhile
                    self._slots.release()
                    continue
                batch = self._take_batch()
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
            while self._queue:
                _, _, future = self._take()
                if not future.done():
                    future.set_exception(CommitterClosed("the webhook writer stopped"))


def _fail(batch: list[tuple[T, asyncio.Future[R]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
