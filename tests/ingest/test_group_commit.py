"""Group commit: concurrent submissions share transactions; failures acknowledge nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.to_thread
import pytest

from receiver.ingest.commit import Bounds, CommitterClosed, CommitTimeout, GroupCommitter, QueueFull
from tests.support.stack import until

T = TypeVar("T")
R = TypeVar("R")


def in_thread(commit: Callable[[list[T]], list[R]]) -> Callable[[list[T]], Awaitable[list[R]]]:
    """A blocking `commit` (one transaction) run in a worker thread."""

    async def run(items: list[T]) -> list[R]:
        return await anyio.to_thread.run_sync(commit, items)

    return run


pytestmark = pytest.mark.anyio


async def test_concurrent_submissions_are_committed_in_few_batches() -> None:
    """While one batch commits, later submissions gather into the next batch."""
    release = threading.Event()
    batches: list[list[int]] = []

    def commit(items: list[int]) -> list[int]:
        if not batches:
            release.wait(timeout=5)
        batches.append(list(items))
        return [item * 10 for item in items]

    committer: GroupCommitter[int, int] = GroupCommitter(in_thread(commit))
    writer = asyncio.create_task(committer.run())
    first = asyncio.create_task(committer.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(committer.submit(i)) for i in range(1, 50)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(first, *rest)
    writer.cancel()
    assert results == [i * 10 for i in range(50)]
    assert len(batches) == 2
    assert sorted(i for batch in batches for i in batch) == list(range(50))


async def test_a_failed_commit_fails_every_submission_of_its_batch() -> None:
    """An exception in the transaction reaches each waiting request, and the writer goes on."""
    calls = 0

    def commit(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return items

    committer: GroupCommitter[str, str] = GroupCommitter(in_thread(commit))
    writer = asyncio.create_task(committer.run())
    with pytest.raises(RuntimeError, match="disk full"):
        await committer.submit("a")
    assert await committer.submit("b") == "b"
    writer.cancel()


async def test_submissions_after_shutdown_are_refused() -> None:
    """Once the writer stopped, submit raises CommitterClosed instead of hanging."""
    committer: GroupCommitter[int, int] = GroupCommitter(in_thread(lambda items: items))
    writer = asyncio.create_task(committer.run())
    await asyncio.sleep(0)
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    with pytest.raises(CommitterClosed):
        await committer.submit(1)


async def test_a_full_queue_refuses_at_once_by_count_and_by_bytes() -> None:
    """While a batch commits, the queue takes no more than its bounds; the rest is refused
    immediately (the request answers 503 rather than holding memory)."""
    release, entered = threading.Event(), threading.Event()

    def commit(items: list[bytes]) -> list[int]:
        entered.set()
        release.wait(timeout=5)
        return [len(item) for item in items]

    bounds = Bounds(max_queue=3, max_queue_bytes=250)
    committer: GroupCommitter[bytes, int] = GroupCommitter(
        in_thread(commit), bounds=bounds, size=len
    )
    writer = asyncio.create_task(committer.run())
    in_flight = asyncio.create_task(committer.submit(b"x"))
    await until(entered.is_set, what="the first batch committing")
    waiting = [asyncio.create_task(committer.submit(b"y" * 100)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await committer.submit(b"z" * 100)  # 300 bytes queued would pass the 250
    small = asyncio.create_task(committer.submit(b"s"))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await committer.submit(b"t")  # a fourth item
    release.set()
    assert await asyncio.gather(in_flight, *waiting, small) == [1, 100, 100, 1]
    assert (committer.queued, committer.queued_bytes) == (0, 0)
    writer.cancel()


async def test_a_request_not_committed_in_time_times_out_and_its_item_is_dropped() -> None:
    """A stalled commit: the waiting request gets CommitTimeout and its queued item is
    forgotten (never committed later, holding no room)."""
    release, entered = threading.Event(), threading.Event()
    committed: list[str] = []

    def commit(items: list[str]) -> list[str]:
        entered.set()
        release.wait(timeout=5)
        committed.extend(items)
        return items

    committer: GroupCommitter[str, str] = GroupCommitter(
        in_thread(commit), bounds=Bounds(timeout_s=0.2), size=len
    )
    writer = asyncio.create_task(committer.run())
    stalled = asyncio.create_task(committer.submit("first"))
    await until(entered.is_set, what="the first batch committing")
    with pytest.raises(CommitTimeout):
        await committer.submit("second")
    assert (committer.queued, committer.queued_bytes) == (0, 0)
    release.set()
    with pytest.raises(CommitTimeout):
        await stalled
    assert await committer.submit("third") == "third"
    assert committed == ["first", "third"]
    writer.cancel()


async def test_an_item_the_commit_refuses_fails_alone() -> None:
    """`commit` answering an exception for one item fails that request only."""

    def commit(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"bad {i}") if i < 0 else i for i in items]

    committer: GroupCommitter[int, int] = GroupCommitter(in_thread(commit))
    writer = asyncio.create_task(committer.run())
    results = await asyncio.gather(
        *(committer.submit(i) for i in (1, -2, 3)), return_exceptions=True
    )
    assert (results[0], results[2]) == (1, 3)
    assert isinstance(results[1], ValueError)
    writer.cancel()
