"""Chaos soak: two emulated days of faults against the shipped product, held to the truth.

A standalone emulator (`cellect-monitor emulator`, demo trader on, 3 sites) runs at
SPEED× real time; `cellect-monitor run` follows its clock (CELLECT_CLOCK_URL), polls it
and receives its webhooks through a recording tee on loopback; alerts go to a loopback
JSON sink (Apprise `json://`). Over two emulated days: API faults (5xx, 429 with
Retry-After, latency, access tokens expiring), webhooks dropped, duplicated and
reordered, two boxes cut off for hours (their entries fail), the webhook writer killed
twice, the monitor stopped with SIGTERM and with kill -9 and started again. Then, with
the faults cleared and the last polls done:

- every delivery the monitor acknowledged is stored;
- no answer was a 5xx other than the documented 503s (and nothing crashed in the log);
- every ImplementationFailed the boxes recorded (the emulator's ExPost) is in the
  monitor's history, and alerted: each falls in a firing period of its site's alert,
  each period resolves only after its hold, and no alert was told firing twice;
- the monitor never died on its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from receiver.emulator.trader import ceil_slot
from receiver.web.app import WEBHOOK_PATH
from tests.support.product import Product, free_port, writer_processes
from tests.support.sinks import HttpSink
from tests.support.soak import (
    EmulatorProcess,
    Tee,
    answers,
    at_moment,
    delivery_digest,
    failures_in_truth,
    monitor_env,
    post_entries,
    stored_history,
    told_periods,
    until,
)
from tests.support.stack import served

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SPEED = 2400.0  # an emulated hour in 1.5 real seconds
HOUR = 3600.0
SECRET = "chaos-webhook-secret-0001"
HOLD = timedelta(hours=1)
# How late the monitor may learn of a failure: a restart's downtime (seconds of real
# time are hours here) and the next ExPost poll that reads it back.
LEARNING = timedelta(hours=6)
API_FAULTS = {
    "endpoint": "*",
    "error_rate": 0.1,
    "rate_limit_rate": 0.05,
    "retry_after_s": 120,
    "latency_s": 0.01,
}
WEBHOOK_FAULTS = {"drop_rate": 0.1, "duplicate_rate": 0.15, "reorder": True}


World = tuple[EmulatorProcess, Product, Tee, HttpSink]


@asynccontextmanager
async def soak_world(database_url: str, workdir: Path) -> AsyncIterator[World]:
    port = free_port()
    tee = Tee(f"http://127.0.0.1:{port}")
    with HttpSink() as sink:
        async with served(tee.app()) as tee_url:
            emulator = EmulatorProcess(
                workdir, f"{tee_url}{WEBHOOK_PATH}?token={SECRET}", speed=SPEED
            )
            monitor = Product(
                workdir,
                port=port,
                **monitor_env(emulator, sink, database_url, SECRET),
            )
            try:
                await until(lambda: answers(emulator.url), "the emulator to answer")
                await monitor.start()
                yield emulator, monitor, tee, sink
            finally:
                # Off the event loop: the tee in it keeps answering the emulator meanwhile.
                await asyncio.to_thread(monitor.stop)
                await asyncio.to_thread(emulator.stop)


def _stopped_gracefully(monitor: Product) -> None:
    """SIGTERM: a clean shutdown, status 0."""
    shutdowns = monitor.output().count("Application shutdown complete")
    assert monitor.terminate() == 0
    assert monitor.output().count("Application shutdown complete") == shutdowns + 1


def _kill_writer(monitor: Product) -> None:
    [writer] = writer_processes(monitor.pid)
    os.kill(writer, signal.SIGKILL)


async def test_two_days_of_chaos_lose_nothing_and_alert_each_failure_once(
    database_url: str, tmp_path: Path
) -> None:
    """See the module docstring."""
    async with soak_world(database_url, tmp_path) as (emulator, monitor, tee, sink):
        t0 = await emulator.now()
        downtimes: list[tuple[datetime, datetime]] = []  # (stopped, started again)

        def at(hours: float) -> datetime:
            return t0 + timedelta(hours=hours)

        await emulator.control("POST", "/faults", API_FAULTS)
        await emulator.control("POST", "/webhook-faults", WEBHOOK_FAULTS)
        await at_moment(emulator, monitor, at(3))
        await emulator.control("POST", "/sites/1/box", {"online": False})
        # The trader plans hours ahead and a box runs what it already holds: work
        # posted now, re-planning two hours of it, is what the cut-off box fails.
        await post_entries(emulator, 1, ceil_slot(at(4)), count=8, power_kw=-5.0)
        await at_moment(emulator, monitor, at(6))
        _kill_writer(monitor)
        await at_moment(emulator, monitor, at(11))
        await emulator.control("POST", "/sites/1/box", {"online": True})
        await at_moment(emulator, monitor, at(14))
        stopped = await emulator.now()
        _stopped_gracefully(monitor)
        await monitor.start()
        downtimes.append((stopped, await emulator.now()))
        await at_moment(emulator, monitor, at(18))
        await emulator.control("POST", "/sites/2/box", {"online": False})
        await emulator.control("POST", "/faults", {**API_FAULTS, "expire_tokens": True})
        await post_entries(emulator, 2, ceil_slot(at(19)), count=8, power_kw=5.0)
        await at_moment(emulator, monitor, at(22))
        _kill_writer(monitor)
        await at_moment(emulator, monitor, at(26))
        stopped = await emulator.now()
        monitor.kill()
        await monitor.start()
        downtimes.append((stopped, await emulator.now()))
        await at_moment(emulator, monitor, at(29))
        await emulator.control("POST", "/sites/2/box", {"online": True})
        await at_moment(emulator, monitor, at(36))
        await emulator.control("DELETE", "/faults")
        await emulator.control("POST", "/webhook-faults", {})
        await at_moment(emulator, monitor, at(48))

        truth = await failures_in_truth(emulator, t0 - timedelta(hours=1), at(48))
        assert truth, "the cut-off boxes failed entries"
        assert monitor.process is not None
        assert monitor.process.poll() is None, "the monitor died on its own"
        _stopped_gracefully(monitor)

    digests, learned = stored_history(database_url)
    acknowledged = [body for body, status in tee.answers if status == 200]
    assert acknowledged
    lost = [b for b in acknowledged if delivery_digest(b) not in digests]
    assert lost == []
    assert {status for _, status in tee.answers} <= {200, 503}
    output = monitor.output()
    assert "Exception in ASGI application" not in output, monitor.tail(80)
    assert not re.search(r'HTTP/1\.1" 5(?!03)\d\d', output), monitor.tail(80)

    assert truth <= set(learned), "a failure the boxes recorded is not in the history"
    assert all(learned[f] - f[1] <= LEARNING for f in truth), "a failure learned very late"
    # Alerted exactly once: each failure falls in a firing period of its site (the
    # hold counted from when the monitor learned it), and no period resolves within the
    # hold of a failure learned before it ends. Slack: half a real second — a poll
    # round's write and an alert cycle on a loaded machine (the loop's breather between
    # cycles never outlasts a tick of the clock) — is twenty emulated minutes here.
    minute = timedelta(minutes=20)
    periods = told_periods(sink)
    for failure in sorted(truth):
        site_id, at = failure[0], learned[failure]
        # Learned just before the monitor went down: told once it is back.
        told_by = max([at] + [up for down, up in downtimes if at - minute <= down <= at + HOLD])
        covering = [
            p
            for p in periods
            if p.site_id == site_id
            and p.since <= told_by + minute
            and (p.resolved is None or p.resolved >= at + HOLD - minute)
        ]
        assert covering, (
            f"failure {failure} learned at {at} never alerted: {periods}\n{monitor.tail(60)}"
        )
    for period in periods:
        if period.resolved is None:
            continue
        early = [
            f
            for f in truth
            if f[0] == period.site_id
            and period.resolved - HOLD + minute < learned[f] <= period.resolved - minute
        ]
        assert early == [], f"{period} resolved within the hold of {early}"
