"""The monitor stack with its alerts going to a real loopback JSON sink (Apprise `json://`).

    async with alert_stack(database_url) as a:   # a.stack: tests.support.stack.Stack
        await a.settle()                         # polls done, an alert cycle judged "now"
        await a.step(30)                         # advance, settle, deliver what is due
        a.notes("ImplementationFailed")          # the sink's messages whose title names it

Time is frozen: `step` moves it, then waits (bounded, in real time) for the alert loop
to judge the new time and for the outbox worker to drain what that cycle wrote.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from receiver.cellect.models import ScheduleEntry
from tests.support.sinks import HttpSink
from tests.support.stack import Stack, monitor_stack, until

SINK_PATH = "/cellect-alerts"


@dataclass
class AlertStack:
    stack: Stack
    sink: HttpSink
    apprise_url: str

    def notes(self, rule: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies the sink accepted (title, message, type), optionally of one rule."""
        bodies = [json.loads(r.body) for r in self.sink.accepted]
        return [b for b in bodies if rule is None or f"] {rule} (" in b["title"]]

    async def judged(self) -> None:
        """Wait for an alert cycle that starts after this call (what is known now is judged)."""
        monitor = self.stack.monitor
        before = monitor.alert_loop.cycles_started
        monitor.wake_alerts()
        # Generous: a cycle waits out its real-time gap (up to a tick) on a loaded machine.
        await until(
            lambda: monitor.alert_loop.cycles_done > before, within=30.0, what="an alert cycle"
        )

    async def polled(self, *names: str) -> None:
        """Wait until the named pollers (default: all) have succeeded at the current time."""
        now = self.stack.clock.now()
        pollers = [p for p in self.stack.monitor.pollers if not names or p.name in names]
        await until(
            lambda: all(p.last_success is not None and p.last_success >= now for p in pollers),
            what=f"polls {names or 'all'} at {now}",
        )

    async def delivered(self) -> None:
        """Let the outbox worker send what is pending (it ticks on the clock: nudge it 1 s)."""
        outbox = self.stack.monitor.outbox
        if outbox.pending() == 0:
            return
        await self.stack.advance(1)
        await until(lambda: outbox.pending() == 0, what="the outbox to drain")

    async def settle(self, *pollers: str) -> None:
        """Pollers (if named) done, then an alert cycle at now, then its messages sent."""
        if pollers:
            await self.polled(*pollers)
        await self.judged()
        await self.delivered()

    async def step(self, seconds: float, *pollers: str) -> None:
        """Advance the clock by `seconds`, then `settle`."""
        await self.stack.advance(seconds)
        await self.settle(*pollers)

    async def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Call the emulator's control API (`/_emulator/...`); raises on an error answer."""
        async with self.stack.emulator_client() as client:
            response = await client.request(method, f"/_emulator{path}", json=body)
        response.raise_for_status()
        return response

    async def post_entry(
        self, site_id: int, starts_in_s: float, minutes: int = 15, power_kw: float = 5.0
    ) -> datetime:
        """Store one schedule entry on the site's box; returns its start."""
        start = self.stack.clock.now() + timedelta(seconds=starts_in_s)
        entry = ScheduleEntry(
            start_date=start, end_date=start + timedelta(minutes=minutes), ess_power_ac=power_kw
        )
        self.stack.emulator.store(site_id, [entry])
        await self.stack.advance(0)  # deliver its InProgress webhook
        return start


@asynccontextmanager
async def alert_stack(
    database_url: str,
    *,
    credentials: str = "",
    sites: int = 2,
    **overrides: Any,
) -> AsyncIterator[AlertStack]:
    """A monitor stack whose one Apprise target is a JSON sink on loopback.

    Alert thresholds that would fire on the emulator's own noise during a test (stale
    data across big clock steps) are widened; tests pass their own timings.
    """
    values: dict[str, Any] = {"stale_after_s": 86400.0, **overrides}
    with HttpSink() as sink:
        url = f"json://{credentials}127.0.0.1:{sink.port}{SINK_PATH}"
        async with monitor_stack(
            database_url, sites=sites, apprise_urls=[SecretStr(url)], **values
        ) as stack:
            alerts = AlertStack(stack, sink, url)
            await alerts.settle("portfolio", "events")
            yield alerts


def site_names(alerts: AlertStack) -> Callable[[int], str]:
    """Site id → the name the monitor knows it by."""
    return lambda site_id: alerts.stack.emulator.specs[site_id].name


# An unplanned outage (reason 4 Outage, source 4 Inverter) of one emulated hour.
UNPLANNED: dict[str, Any] = {"type": "Unplanned", "reason": 4, "source": 4, "duration_s": 3600}
