"""The running monitor: every component, built from the settings, and its background work.

`Monitor.start()` opens what needs opening (database schema, webhook secret, HTTP
client) and `run(stop)` drives the pollers, the webhook writer, the alert engine, the
notification outbox and retention until `stop` is set. The Starlette app's lifespan
(receiver.web.app) owns one Monitor; tests can build several with different settings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine
from contextlib import AsyncExitStack, suppress
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
from sqlalchemy import text
from sqlmodel import Session

from receiver.alerting.catalogue import ratio_threshold_values, threshold_values
from receiver.alerting.engine import AlertEngine
from receiver.alerting.loop import AlertLoop
from receiver.alerting.model import FleetView
from receiver.alerting.notify.notifier import Notifier
from receiver.alerting.notify.outbox import DeliveryWorker
from receiver.analytics.trajectory import Physics
from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus
from receiver.coordination import feed
from receiver.coordination.coordinator import SINGLETONS, Coordinator
from receiver.coordination.presence import Presence, preflight
from receiver.coordination.replica import Replica
from receiver.fleet.energy_job import EnergyJob
from receiver.fleet.picture import Fleet
from receiver.ingest.auth import WebhookAuth, load_webhook_secret
from receiver.ingest.commit import Bounds, GroupCommitter
from receiver.ingest.endpoint import WebhookReceiver
from receiver.ingest.framing import WriterUnavailable
from receiver.ingest.writer import WriterProcess
from receiver.metrics.leases import ReplicaState
from receiver.metrics.registry import Metrics, WriterHealth
from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext
from receiver.pollers.events import EventsPoller
from receiver.pollers.portfolio import PortfolioPoller
from receiver.pollers.schedules import ExAntePoller, ExPostPoller
from receiver.runtime import clock_follower, waiting
from receiver.settings import Settings
from receiver.storage.deliveries import BatchOutcome, IncomingDelivery, canonical_digest
from receiver.storage.engine import create_engine_for, session_factory, upgrade
from receiver.storage.fleet_state import StoredFleet, load_fleet
from receiver.storage.retention import run_retention
from receiver.vendor.circuit import CircuitState
from receiver.vendor.client import CellectClient
from receiver.vendor.metrics import ClientMetrics
from receiver.vendor.pools import ShardedTransport

log = logging.getLogger(__name__)
IN_DOUBT_KEPT = 100_000  # digests of deliveries in doubt, the oldest forgotten first


class ClientEvents:
    """The client's observer (receiver.vendor.gate): its metrics, and its circuit for ApiDown."""

    def __init__(self, metrics: ClientMetrics, fleet: Fleet) -> None:
        self.metrics, self.fleet = metrics, fleet

    def api_retry(self, endpoint: str, reason: str) -> None:
        self.metrics.api_retry(endpoint, reason)

    def api_not_sent(self, endpoint: str, reason: str) -> None:
        self.metrics.api_not_sent(endpoint, reason)

    def api_circuit(self, state: CircuitState) -> None:
        # ApiDown needs nothing more: the failures that opened the circuit stay unanswered
        # (cellect_api_failing_since…) until a probe gets an answer.
        self.metrics.api_circuit(state)

    def api_paused(self, until: float, added_s: float) -> None:
        self.metrics.api_paused(until, added_s)


class Monitor:
    """All of cellect-monitor's parts, wired together."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings, self.clock, self.metrics = settings, clock, metrics
        self.transport = transport
        self.database = create_engine_for(settings.database_url)
        self.notifier = Notifier.from_settings(settings)
        self.alert_engine = AlertEngine(
            clock,
            settings,
            self.database,
            metrics,
            route=lambda severity: [t.id for t in self.notifier.targets_for(severity)],
        )
        self.fleet = Fleet(
            metrics=metrics,
            clock=clock,
            in_progress_stuck_s=settings.in_progress_stuck_s,
            failure_hold_s=self.alert_engine.thresholds.failure_hold_s,
            polling=settings.refresh_token is not None,
            max_sites=settings.max_sites,
            physics=Physics(
                settings.plan_soc_min, settings.plan_soc_max, settings.round_trip_efficiency
            ),
            tracking_window=settings.tracking_window_entries,
        )
        self.outbox = DeliveryWorker(clock, self.database, self.notifier, metrics)
        self.writer = WriterProcess(settings.database_url)
        # Two batches in flight: the writer process stores one while the next is sent.
        bounds = Bounds(
            max_queue=settings.webhook_queue_max,
            max_queue_bytes=settings.webhook_queue_max_bytes,
            max_in_flight=2,
            timeout_s=settings.webhook_commit_timeout_s,
        )
        self.committer: GroupCommitter[IncomingDelivery, BatchOutcome] = GroupCommitter(
            self._commit, bounds=bounds, size=lambda d: len(d.body), on_committed=self._stored
        )
        # Deliveries whose batch died with the writer: committed or not, nobody knows.
        # When one comes again (a duplicate, if it was committed), the writer returns the
        # changes it made, so the fleet and alerts learn them after all.
        self._in_doubt: OrderedDict[str, None] = OrderedDict()
        metrics.watch_writer(
            WriterHealth(
                self.writer_up,
                lambda: self.writer.restarts,
                lambda: (self.committer.queued, self.committer.queued_bytes),
            )
        )
        self.client: CellectClient | None = None
        self.pollers: list[Poller] = []
        self.energy_job: EnergyJob | None = None  # while polling: measurements and plans
        self.receiver: WebhookReceiver | None = None
        self.webhook_secret: str | None = None
        self.alert_loop = AlertLoop(
            self.alert_engine,
            self._judged_view,
            min_gap_s=settings.alert_min_gap_s,
            leads=lambda: self.replica is None or self.replica.leads("alerts"),
        )
        self._exit = AsyncExitStack()
        self.presence = Presence(self.database)
        # One of several replicas on PostgreSQL (leases, the fleet feed); None on SQLite,
        # where one monitor does everything.
        self.replica: Replica | None = None
        if self.database.dialect.name == "postgresql":
            self.writer.replica = self.presence.planned.id

    # Start-up.

    async def start(self) -> None:
        if self.settings.clock_url:
            async with httpx.AsyncClient(timeout=10.0) as http:
                await clock_follower.sync(self.clock, http, self.settings.clock_url, first=True)
        # The writer process starts (its imports, its connection) beside the migration
        # and the fleet's restore, on the other core, rather than after them.
        writer_starting = asyncio.create_task(self.writer.start())
        try:
            await anyio.to_thread.run_sync(preflight, self.database)
            await anyio.to_thread.run_sync(upgrade, self.database)
            identity = await anyio.to_thread.run_sync(self.presence.start)
            if self.writer.replica is not None:
                coordinator = Coordinator(
                    self.database,
                    replica=identity,
                    renew_s=self.settings.lease_renew_s,
                    lease_ttl_s=self.settings.lease_ttl_s,
                    replica_ttl_s=self.settings.lease_ttl_s,
                )
                self.replica = Replica(self.database, identity, coordinator=coordinator)
                # Before the restore: every change committed after it comes by the feed.
                await anyio.to_thread.run_sync(self.replica.mark_start)
            stored = await anyio.to_thread.run_sync(self._stored_fleet)
        except BaseException:
            with suppress(Exception):
                await writer_starting
            await self.writer.close()
            raise
        await writer_starting
        self.fleet.restore(stored)
        self.alert_engine.settled = self.settled
        if self.replica is not None:
            await self._join(self.replica)
        self.webhook_secret = await anyio.to_thread.run_sync(
            load_webhook_secret, self.settings, self.database, self.clock
        )
        self.receiver = self._build_receiver()
        if self.settings.refresh_token is not None:
            # A pool per poll worker (four pollers, `poll_concurrency` workers each).
            transport = self.transport or ShardedTransport(4 * self.settings.poll_concurrency)
            http = await self._exit.enter_async_context(
                httpx.AsyncClient(transport=transport, timeout=self.settings.http_timeout_s)
            )
            # Backoff waits on the monitor's clock, as its intervals do: a sped-up
            # demo or a frozen test clock does not wait in real time.
            self.client = CellectClient.from_settings(
                self.settings,
                http,
                self.clock,
                on_request=self._api_request,
                sleep=self.clock.sleep,
                observer=ClientEvents(self.metrics.client, self.fleet),
            )
            self.pollers = self._build_pollers(self.client)
            self.energy_job = self._build_energy_job()
            for poller in self.pollers:
                if isinstance(poller, ExPostPoller):
                    poller.catch_up_from = stored.last_activity
        else:
            log.warning("CELLECT_REFRESH_TOKEN is not set: polling is off, webhooks only")
        self.metrics.set_thresholds(
            (self.settings.soc_low, self.settings.soc_high), self.settings.site_soc_thresholds
        )
        self.metrics.set_alert_thresholds(threshold_values(self.settings))
        self.metrics.set_alert_ratios(ratio_threshold_values(self.settings))
        self.fleet.set_refresh_token_expiry(self.settings.refresh_token_expires_at)

    async def _join(self, replica: Replica) -> None:
        """Take this replica's leases (its first round), and follow them: the metrics
        export the sites of its buckets, the alert engine reads the alert state afresh
        whenever it comes to lead, the others' changes come into the fleet picture."""
        metrics = self.metrics
        replica.on_moved = lambda: metrics.export_only(replica.owns)
        replica.on_leading = self._leading
        replica.on_entries = self._apply_feed
        self.alert_engine.fence = lambda session: replica.fence(session, singleton="alerts")
        metrics.watch_replica(lambda: _replica_state(replica))
        metrics.export_only(replica.owns)
        await replica.start()

    def _leading(self, kind: str, leading: bool) -> None:
        if kind == "alerts":
            if leading:
                self.alert_engine.lead_anew()
                self.wake_alerts()
            else:
                self.metrics.set_alerts_firing({})

    async def _apply_feed(self, entries: list[feed.Entry]) -> None:
        failed, snapshots = self.fleet.apply_feed(entries)
        if snapshots:
            await anyio.to_thread.run_sync(self.metrics.update_sites, snapshots)
        if failed:
            self.wake_alerts()

    def _stored_fleet(self) -> StoredFleet:
        hold = timedelta(seconds=self.alert_engine.thresholds.failure_hold_s)
        with session_factory(self.database)() as session:
            return load_fleet(session=session, now=self.clock.now(), failure_hold=hold)

    def settled(self) -> bool:
        """Whether alerts that fired before this start may resolve: the monitor judges on
        data it fetched itself — every poller has ended a round and the API has answered —
        or, with the API not answering, long enough has passed for ApiDown's own
        condition to hold again. Webhooks only: at once (the database is all it knows)."""
        if not self.pollers:
            return True
        longest = max(p.interval_s for p in self.pollers)
        patience = self.settings.api_down_after_s + 2 * longest
        elapsed = (self.clock.now() - self.fleet.service.started_at).total_seconds()
        if elapsed >= patience:
            return True
        answered = self.fleet.service.answered_at is not None
        return answered and all(p.completed for p in self.pollers)

    def _build_receiver(self) -> WebhookReceiver:
        s = self.settings
        auth = WebhookAuth.build(
            secret=self.webhook_secret,
            disabled=s.webhook_auth_disabled,
            signing_secrets=[x.get_secret_value() for x in s.webhook_signing_secrets],
            allowed=s.webhook_allowed_ips,
        )
        return WebhookReceiver(
            auth=auth,
            committer=self.committer,
            clock=self.clock,
            max_body_bytes=s.webhook_max_body_bytes,
            on_request=self.fleet.service.webhook_answered,
        )

    def _build_pollers(self, client: CellectClient) -> list[Poller]:
        s = self.settings
        context = PollContext(
            client, self.database, self.fleet, s.poll_concurrency, replica=self.replica
        )
        common: dict[str, Any] = {
            "clock": self.clock,
            "jitter": s.poll_jitter,
            "on_success": self._poll_succeeded,
        }
        pollers: list[Poller] = [
            PortfolioPoller(context, interval_s=s.portfolio_interval_s, **common),
            EventsPoller(context, interval_s=s.events_interval_s, **common),
            ExAntePoller(context, interval_s=s.ex_ante_interval_s, **common),
            ExPostPoller(context, interval_s=s.ex_post_interval_s, **common),
        ]
        for poller in pollers:
            self.fleet.service.poller_started(poller.name, poller.interval_s)
        return pollers

    def _build_energy_job(self) -> EnergyJob:
        """Delivered against planned, per entry: computed once per portfolio interval.
        Too few samples means a gap longer than three polls; an entry is computed once
        the poll after its end is surely in (that gap and one interval more)."""
        interval = self.settings.portfolio_interval_s
        return EnergyJob(
            database=self.database,
            clock=self.clock,
            tracking=self.fleet.tracking,
            replica=self.replica,
            interval_s=interval,
            max_gap_s=3 * interval,
            grace_s=4 * interval,
        )

    # Callbacks from the parts.

    def writer_up(self) -> bool:
        """The writer process runs and answers within the commit timeout."""
        timeout = self.settings.webhook_commit_timeout_s
        return self.writer.alive and self.writer.busy_for() < timeout

    async def _commit(self, deliveries: list[IncomingDelivery]) -> list[BatchOutcome | Exception]:
        """One batch through the writer process, timed; its deliveries in doubt if it dies."""
        digests = [canonical_digest(d.webhook) for d in deliveries] if self._in_doubt else []
        # Claimed by this batch (back in doubt if it fails too): a redelivery sent again
        # before this batch answers must not have the same changes learned twice.
        doubted = frozenset(d for d in digests if self._in_doubt.pop(d, False) is None)
        started = time.perf_counter()
        try:
            results = await self.writer.commit(deliveries, doubted)
        except WriterUnavailable:
            for delivery in deliveries:
                self._in_doubt[canonical_digest(delivery.webhook)] = None
            while len(self._in_doubt) > IN_DOUBT_KEPT:
                self._in_doubt.popitem(last=False)
            raise
        finally:
            self.metrics.webhook_commit_duration.observe(time.perf_counter() - started)
        return results

    async def _watch_writer(self, stop: asyncio.Event) -> None:
        """Kill a writer that has not answered for three commit timeouts (stopped, hung):
        its batches fail, their deliveries are in doubt, the next batch starts a new one."""
        limit = 3 * self.settings.webhook_commit_timeout_s
        while not stop.is_set():
            if self.writer.busy_for() > limit:
                self.writer.kill()
            await waiting.pause(1.0, stop)

    def _stored(self, outcomes: list[BatchOutcome]) -> None:
        """A committed batch of deliveries: the fleet learns its changes, failures wake alerting."""
        changes = [change for outcome in outcomes for change in outcome.changes]
        self.fleet.webhooks_received(changes)
        if any(c.status is ImplementationStatus.IMPLEMENTATION_FAILED for c in changes):
            self.wake_alerts()

    def wake_alerts(self) -> None:
        """Have the alert loop judge the fleet now rather than at its next tick."""
        self.alert_loop.wake()

    async def _judged_view(self) -> FleetView:
        """The fleet as the alert rules judge it, its schedule outlook brought up to now."""
        return await self.fleet.judged_view()

    def _api_request(self, endpoint: str, code: str, seconds: float) -> None:
        self.fleet.api_request(endpoint, code, seconds)

    def _poll_succeeded(self, name: str, at: datetime) -> None:
        self.fleet.service.poll_succeeded(name, at)
        # Published here, not on the token request: the new expiry is known only once
        # the token answer has been read, after that request was reported.
        expiry = self.client.access_token_expires_at if self.client else None
        if expiry is not None:
            self.metrics.set_access_token_expiry(expiry.timestamp())

    # Health.

    def database_ok(self) -> bool:
        try:
            with Session(self.database) as session:
                session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        except Exception:
            return False
        return True

    # Background work.

    async def run(self, stop: asyncio.Event) -> None:
        """Run every background part until `stop` is set, then wind them down in order.

        One shutdown style: every loop takes `stop` and ends once it is set (a grace of
        five seconds, then it is cancelled). The group committer alone runs until it is
        cancelled, last: it must serve the requests still in flight, and by then the
        server has answered them all."""
        work: list[Coroutine[Any, Any, None]] = [poller.run(stop) for poller in self.pollers]
        if self.settings.clock_url:
            work.append(clock_follower.follow(self.clock, self.settings.clock_url, stop))
        if self.replica is not None:
            work.append(self.replica.run(stop))
        if self.energy_job is not None:
            work.append(self.energy_job.run(stop))
        work += [
            self.presence.run(stop),
            self._watch_writer(stop),
            self.alert_loop.run(stop),
            self.outbox.run(stop),
            run_retention(
                self.database,
                retention_days=self.settings.retention_days,
                clock=self.clock,
                stop=stop,
            ),
        ]
        writer = asyncio.create_task(self.committer.run())
        tasks = [asyncio.create_task(w) for w in work]
        try:
            await stop.wait()
        finally:
            await _wind_down(tasks)
            # The writer runs until cancelled; no request is in flight any more.
            await _wind_down([writer], grace_s=0.0)

    async def close(self) -> None:
        await self.writer.close()
        if self.replica is not None:  # its work has stopped: the others may take over
            await self.replica.close()
        await self._exit.aclose()
        await anyio.to_thread.run_sync(self.presence.stop)
        self.database.dispose()


def _replica_state(replica: Replica) -> ReplicaState:
    coordinator, identity = replica.coordinator, replica.coordinator.replica
    held = {"poll": len(coordinator.buckets)}
    held.update((kind, int(kind in coordinator.singletons)) for kind in SINGLETONS)
    changes = dict(coordinator.changes)
    return ReplicaState(identity.id, identity.host, identity.version, held, changes)


async def _wind_down(tasks: list[asyncio.Task[None]], grace_s: float = 5.0) -> None:
    _, pending = await asyncio.wait(tasks, timeout=grace_s) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError, Exception):
            await task
