"""This monitor as one of several replicas on PostgreSQL: what it holds, and the feed.

`Replica` wraps the lease `Coordinator` for the service: which sites this replica polls
(`owns`, by bucket), whether it leads a singleton job (`leads("portfolio")`,
`leads("alerts")`), fencing a write by those leases (`fence`), writing its changes to
the fleet feed (`publish`) and reading the others' (`run` hands them to `on_entries`).
Listeners are told when the buckets held change (`on_moved`: the metrics export another
set of sites) and when a singleton is gained or lost (`on_leading`).

On SQLite there is no `Replica`: one monitor, which does everything (the service passes
None, and every caller treats None as "holds everything").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine
from sqlmodel import Session

from receiver.coordination import feed, leases
from receiver.coordination.buckets import POLL, bucket_of
from receiver.coordination.coordinator import Coordinator
from receiver.coordination.errors import LeaseLost
from receiver.coordination.listener import Listener, conninfo_of
from receiver.coordination.registry import ReplicaIdentity
from receiver.runtime import waiting
from receiver.storage.engine import session_factory

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 300.0


class Replica:
    """See the module docstring."""

    def __init__(
        self, engine: Engine, identity: ReplicaIdentity, *, coordinator: Coordinator | None = None
    ) -> None:
        self.engine = engine
        self.coordinator = coordinator or Coordinator(engine, replica=identity)
        self._sessions = session_factory(engine)
        self._buckets: frozenset[int] = frozenset()
        self._leading: frozenset[str] = frozenset()
        self._bucket_of: dict[int, int] = {}
        self.cursor: feed.Cursor = (0, 0)
        self.on_moved: Callable[[], None] = lambda: None
        self.on_leading: Callable[[str, bool], None] = lambda kind, leading: None
        self.on_entries: Callable[[list[feed.Entry]], Awaitable[None]] = _ignore
        self._feed_wake = asyncio.Event()
        self.feed_listener = Listener(conninfo_of(engine.url), self._notified, channel=feed.CHANNEL)

    @property
    def id(self) -> str:
        return self.coordinator.id

    # What this replica holds.

    def bucket(self, site_id: int) -> int:
        found = self._bucket_of.get(site_id)
        if found is None:
            found = self._bucket_of[site_id] = bucket_of(site_id)
        return found

    def owns(self, site_id: int) -> bool:
        """Whether this replica polls `site_id` (and exports its series)."""
        return self.bucket(site_id) in self._buckets

    def mine(self, site_ids: Iterable[int]) -> list[int]:
        """Those of `site_ids` this replica polls, in their order."""
        held = self.coordinator.buckets
        return [s for s in site_ids if self.bucket(s) in held]

    def leads(self, kind: str) -> bool:
        """Whether this replica holds the singleton lease `kind` ("portfolio", "alerts")."""
        return kind in self.coordinator.singletons

    @property
    def buckets(self) -> frozenset[int]:
        return self._buckets

    # Writes.

    def fence(
        self, session: Session, *, sites: Iterable[int] = (), singleton: str | None = None
    ) -> None:
        """Fence the write in `session` by the leases it was made under: the buckets of
        `sites`, and the singleton lease `singleton`. `LeaseLost` if any is not held."""
        if singleton is not None:
            self.coordinator.fence(session, singleton)
        buckets = {self.bucket(s) for s in sites}
        if not buckets:
            return
        epochs: dict[int, int] = {}
        for bucket in buckets:
            epoch = self.coordinator.epoch_of(POLL, bucket)
            if epoch is None:
                raise LeaseLost(POLL, bucket, -1, f"not held by {self.id}")
            epochs[bucket] = epoch
        leases.fence_all(session=session, kind=POLL, epochs=epochs)

    def publish(self, session: Session, kind: str, body: dict[str, Any]) -> None:
        """A change of the fleet picture, for the other replicas (in `session`'s
        transaction)."""
        feed.publish(session=session, replica=self.id, kind=kind, body=body)

    # Life cycle.

    def mark_start(self) -> None:
        """Remember where the feed is now: call before the fleet is restored from the
        history, so that every change committed after that is read (in a worker thread)."""
        with self._sessions() as session:
            self.cursor = feed.start_cursor(session)

    async def start(self) -> None:
        """Join the leases and take this replica's share at once (the first round), so
        that the pollers' first rounds already know what is theirs."""
        await self.coordinator.start()
        await self.coordinator.step()
        self._after_round()

    def _after_round(self) -> None:
        buckets = self.coordinator.buckets
        if buckets != self._buckets:
            self._buckets = buckets
            self.on_moved()
        leading, before = self.coordinator.singletons, self._leading
        self._leading = leading
        for kind in sorted(leading ^ before):
            log.info("replica %s %s the %s lease", self.id,
                     "holds" if kind in leading else "no longer holds", kind)  # fmt: skip
            self.on_leading(kind, kind in leading)

    async def run(self, stop: asyncio.Event) -> None:
        """The lease rounds and the feed, until `stop`; then hand the leases back."""
        tasks = [
            asyncio.create_task(self._rounds(stop)),
            asyncio.create_task(self._follow(stop)),
            asyncio.create_task(self.feed_listener.run(stop)),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task

    async def close(self) -> None:
        """Hand back every lease (a graceful stop): the others take over at once."""
        with suppress(Exception):
            await self.coordinator.close()
        self._after_round()

    async def _rounds(self, stop: asyncio.Event) -> None:
        self.coordinator.on_round = self._after_round
        await self.coordinator.run(stop)

    def _notified(self, payload: str) -> None:
        if payload != self.id:
            self._feed_wake.set()

    async def _follow(self, stop: asyncio.Event) -> None:
        """Read the others' feed rows and hand them on, at each NOTIFY or every second."""
        failing = False
        pruned_at = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._feed_wake.clear()
            try:
                await self.catch_up()
                if loop.time() - pruned_at > PRUNE_EVERY_S:
                    pruned_at = loop.time()
                    await anyio.to_thread.run_sync(self._prune)
                if failing:
                    log.info("reading the fleet feed works again")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("reading the fleet feed failed: %s", type(exc).__name__)
                failing = True
            await waiting.first(
                asyncio.sleep(feed.READ_EVERY_S), stop.wait(), self._feed_wake.wait()
            )

    async def catch_up(self) -> int:
        """Apply every feed row written by the others and ended by now; how many."""
        applied = 0
        more = True
        while more:
            entries, self.cursor, more = await anyio.to_thread.run_sync(self._read)
            if entries:
                await self.on_entries(entries)
                applied += len(entries)
        return applied

    def _read(self) -> tuple[list[feed.Entry], feed.Cursor, bool]:
        with self._sessions() as session:
            return feed.read(session=session, cursor=self.cursor, skip=self.id)

    def _prune(self) -> None:
        with self._sessions() as session:
            feed.prune(session=session)
            session.commit()


async def _ignore(entries: list[feed.Entry]) -> None:
    pass
