"""Group commit: concurrent submissions share transactions; failures acknowledge nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.to_thread
import pytest

from receiver.ingest import CommitterClosed, GroupCommitter

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
