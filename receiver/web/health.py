"""The monitor's own health as /readyz and the console's Service page both show it.

What this replica holds (`replica`) is reported, never judged: every replica takes any
webhook delivery, so one holding no lease yet is as ready as the leader."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread

from receiver.service import Monitor
from receiver.web.replicas import Holding, holding


@dataclass(frozen=True)
class PollerState:
    name: str
    interval_s: float
    last_success: datetime | None
    overdue: bool
    last_error: str | None
    consecutive_failures: int


@dataclass(frozen=True)
class Readiness:
    """Database reachable, webhook writer up, alerting running, each poller's state;
    and what this replica holds (not part of `ready`)."""

    database: bool
    webhook_writer: bool
    alerting: bool
    pollers: tuple[PollerState, ...]
    replica: Holding

    @property
    def ready(self) -> bool:
        overdue = any(p.overdue for p in self.pollers)
        return self.database and self.webhook_writer and self.alerting and not overdue


async def readiness(monitor: Monitor) -> Readiness:
    database = await anyio.to_thread.run_sync(monitor.database_ok)
    pollers = tuple(
        PollerState(
            p.name,
            p.interval_s,
            p.last_success,
            p.overdue,
            p.last_error,
            p.consecutive_failures,
        )
        for p in monitor.pollers
    )
    return Readiness(
        database, monitor.writer_up(), monitor.alert_loop.ok(), pollers, holding(monitor)
    )
