"""The Coordinator: one replica's side of the lease protocol, as an async loop.

Each round (`step`), in one transaction timed by the database's clock: beat the
replica's heartbeat, renew every lease it holds (those whose owner or epoch changed are
lost), compute its fair share of the buckets among the live replicas, hand back what is
beyond it (NOTIFY), take free or expired buckets up to it, and try each singleton lease
(bucket 0 of "portfolio", "alerts": the first to find one free takes it). `run` repeats
that every `renew_s` seconds, at once when a NOTIFY arrives (PostgreSQL), until stopped;
`close` hands everything back and leaves the registry, so the others take over at once.

Defaults: renew every 5 s, leases and heartbeats live 15 s, so a crashed replica's
buckets are taken within ~20 s (its TTL and one round), a graceful stop's in well under
a second. If rounds keep failing (the database unreachable) the coordinator stops
claiming anything once a lease TTL has passed since its last good round: the leases have
expired at the database by then, and another replica may hold them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress

import anyio.to_thread
from sqlalchemy import Engine
from sqlmodel import Session

from receiver.coordination import leases, registry
from receiver.coordination.balance import beyond_share, fair_share
from receiver.coordination.buckets import BUCKETS, POLL
from receiver.coordination.errors import LeaseLost
from receiver.coordination.guards import code_revision, join, refuse_second_sqlite_replica
from receiver.coordination.leases import Held
from receiver.coordination.listener import Listener, conninfo_of
from receiver.coordination.registry import ReplicaIdentity
from receiver.runtime import waiting
from receiver.storage.engine import session_factory

log = logging.getLogger(__name__)

SINGLETONS = ("portfolio", "alerts")
# Rows of crashed replicas are kept this many replica TTLs for operators, then forgotten.
FORGET_AFTER_TTLS = 240


class Coordinator:
    """Holds this replica's leases: a fair share of the `kind` buckets, and any singletons
    it got first. Read `buckets`, `singletons` and `epoch_of`; write with `fence`."""

    def __init__(
        self,
        engine: Engine,
        *,
        replica: ReplicaIdentity | None = None,
        kind: str = POLL,
        buckets: int = BUCKETS,
        singletons: Iterable[str] = SINGLETONS,
        renew_s: float = 5.0,
        lease_ttl_s: float = 15.0,
        replica_ttl_s: float = 15.0,
        listen: bool = True,
    ) -> None:
        self.engine = engine
        self.replica = replica or ReplicaIdentity.here(code_revision())
        self.kind, self.total = kind, buckets
        self.singleton_kinds = tuple(singletons)
        self.renew_s, self.lease_ttl_s, self.replica_ttl_s = renew_s, lease_ttl_s, replica_ttl_s
        self._sessions = session_factory(engine)
        self._held: dict[tuple[str, int], Held] = {}
        self._good_round_at: float | None = None  # monotonic start of the last good round
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._failing = False
        self._joined = False  # between start() and close()
        # (kind, "acquired" | "lost" | "released") → how many times.
        self.changes: Counter[tuple[str, str]] = Counter()
        self.rounds = 0
        # Called after each round of `run` (what is held may have changed).
        self.on_round: Callable[[], None] = lambda: None
        postgres = engine.dialect.name == "postgresql"
        self.listener = (
            Listener(conninfo_of(engine.url), self._notified) if listen and postgres else None
        )

    # What is held.

    @property
    def id(self) -> str:
        return self.replica.id

    def _current(self) -> dict[tuple[str, int], Held]:
        # Past a lease TTL without a good round, the database has expired them all.
        started = self._good_round_at
        if started is None or time.monotonic() - started > self.lease_ttl_s:
            return {}
        return self._held

    @property
    def buckets(self) -> frozenset[int]:
        """The buckets of `kind` this replica holds (polls)."""
        return frozenset(b for (k, b) in self._current() if k == self.kind)

    @property
    def singletons(self) -> frozenset[str]:
        """The singleton kinds whose lease this replica holds (it leads those jobs)."""
        return frozenset(k for (k, _) in self._current() if k in self.singleton_kinds)

    def epoch_of(self, kind: str, bucket: int = 0) -> int | None:
        """The epoch of the lease (kind, bucket) if held, else None."""
        held = self._current().get((kind, bucket))
        return held.epoch if held else None

    def fence(self, session: Session, kind: str, bucket: int = 0) -> None:
        """Fence the write in `session` by the lease (kind, bucket) this replica holds
        (receiver.coordination.leases.fence); `LeaseLost` if it holds none."""
        epoch = self.epoch_of(kind, bucket)
        if epoch is None:
            raise LeaseLost(kind, bucket, -1, f"not held by {self.id}")
        leases.fence(session=session, kind=kind, bucket=bucket, epoch=epoch)

    @property
    def lease_changes(self) -> int:
        """Leases acquired, lost or handed back since start, all kinds."""
        return sum(self.changes.values())

    # Life cycle.

    async def start(self) -> None:
        """Join: refuse a second replica on SQLite, register, create the lease rows."""
        await anyio.to_thread.run_sync(self._join)

    def _join(self) -> None:
        with self._sessions() as session:
            join(session=session, replica=self.replica, ttl_s=self.replica_ttl_s)
            leases.ensure_leases(session=session, kind=self.kind, buckets=range(self.total))
            for kind in self.singleton_kinds:
                leases.ensure_leases(session=session, kind=kind, buckets=[0])
            session.commit()
        self._joined = True

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds every `renew_s` seconds (at once on a NOTIFY) until `stop` is set.

        It does not hand the leases back: call `close` once the work done under them
        has stopped (a successor taking over earlier would find its writes fenced)."""
        listening = asyncio.create_task(self.listener.run(stop)) if self.listener else None
        try:
            while not stop.is_set():
                self._wake.clear()  # before the round: a NOTIFY during it means another
                await self.step()
                self.on_round()
                await waiting.first(asyncio.sleep(self.renew_s), stop.wait(), self._wake.wait())
        finally:
            if listening is not None:
                listening.cancel()
                with suppress(asyncio.CancelledError):
                    await listening

    def wake(self) -> None:
        """Have `run` do its next round now."""
        self._wake.set()

    def _notified(self, payload: str) -> None:
        if payload != self.id:  # our own NOTIFY tells us nothing new
            self.wake()

    async def step(self) -> None:
        """One round; a failure is logged (on the transition) and the next round retries."""
        if not self._joined:
            raise RuntimeError("Coordinator.start() must come before its rounds")
        async with self._lock:
            started = time.monotonic()
            try:
                await anyio.to_thread.run_sync(self._round)
            except Exception as exc:
                if not self._failing:
                    log.warning("lease round of %s failed: %s", self.id, exc)
                self._failing = True
                return
            if self._failing:
                log.info("lease rounds of %s recovered", self.id)
            self._failing = False
            self._good_round_at = started
            self.rounds += 1

    async def close(self) -> None:
        """Hand back every lease and leave the registry (NOTIFY): a graceful stop."""
        async with self._lock:
            await anyio.to_thread.run_sync(self._leave)

    # The rounds themselves (in a worker thread).

    def _round(self) -> None:
        with self._sessions() as session:
            if not registry.heartbeat(session=session, replica_id=self.id):
                # Forgotten (silent for long): join again, through the same guard.
                refuse_second_sqlite_replica(session=session, me=self.id, ttl_s=self.replica_ttl_s)
                registry.register(session=session, replica=self.replica)
            kept = leases.renew(
                session=session, owner=self.id, held=self._held.values(), ttl_s=self.lease_ttl_s
            )
            # A replica of this host whose process is gone (killed with -9) writes
            # nothing any more: its leases are free now, not when they expire (a monitor
            # restarted at once would otherwise poll nothing for a lease TTL).
            for ended in registry.ended_replicas(session=session):
                if ended != self.id:
                    leases.release(session=session, owner=ended)
                    registry.deregister(session=session, replica_id=ended)
            live = registry.live_replicas(session=session, ttl_s=self.replica_ttl_s)
            share = fair_share([r.id for r in live], self.id, self.total)
            mine = {h.bucket: h for h in kept if h.kind == self.kind}
            released = leases.release(
                session=session,
                owner=self.id,
                held=[mine[b] for b in beyond_share(mine, share)],
            )
            gained = leases.acquire_free(
                session=session,
                owner=self.id,
                kind=self.kind,
                limit=share - len(mine) + len(released),
                ttl_s=self.lease_ttl_s,
            )
            kinds = {h.kind for h in kept}
            for kind in self.singleton_kinds:
                if kind not in kinds:
                    gained += leases.acquire_free(
                        session=session, owner=self.id, kind=kind, limit=1, ttl_s=self.lease_ttl_s
                    )
            registry.forget_dead(session=session, after_s=FORGET_AFTER_TTLS * self.replica_ttl_s)
            session.commit()
        self._settle(kept, released, gained)

    def _settle(self, kept: list[Held], released: list[Held], gained: list[Held]) -> None:
        before = set(self._held.values())
        now = (set(kept) - set(released)) | set(gained)
        for held in before - set(kept):
            self.changes[(held.kind, "lost")] += 1
            log.warning("%s lost the lease %s/%s", self.id, held.kind, held.bucket)
        for held in released:
            self.changes[(held.kind, "released")] += 1
        for held in gained:
            self.changes[(held.kind, "acquired")] += 1
        self._held = {(h.kind, h.bucket): h for h in now}

    def _leave(self) -> None:
        with self._sessions() as session:
            # Every lease under our id, even one a failed round took unbeknown to us.
            released = leases.release(session=session, owner=self.id)
            registry.deregister(session=session, replica_id=self.id)
            session.commit()
        for held in released:
            self.changes[(held.kind, "released")] += 1
        self._held = {}
        self._good_round_at = None
        self._joined = False
