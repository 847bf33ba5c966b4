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
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.cellect import paths
from receiver.cellect.timestamps import format_timestamp, parse_timestamp
from receiver.cellect.webhook import parse_status_webhook
from receiver.storage.deliveries import canonical_digest
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange, WebhookDelivery
from receiver.web.app import WEBHOOK_PATH
from tests.support.product import ROOT, Product, free_port, writer_processes
from tests.support.sinks import HttpSink
from tests.support.stack import served

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SPEED = 2400.0  # an emulated hour in 1.5 real seconds
HOUR = 3600.0
TOKEN = "chaos-refresh-token-0001"
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


class EmulatorProcess:
    """`python -m receiver emulator …` on a free port, its output in a log file."""

    def __init__(self, workdir: Path, webhook_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "emulator.log"
        argv = [
            sys.executable,
            "-m",
            "receiver",
            "emulator",
            "--port",
            str(self.port),
            "--sites",
            "3",
            "--seed",
            "7",
            "--refresh-token",
            TOKEN,
            "--speed",
            str(SPEED),
            "--demo-trader",
            "--webhook-url",
            webhook_url,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=workdir,
                env={**env, "PYTHONPATH": str(ROOT)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def now(self) -> datetime:
        async with httpx.AsyncClient(base_url=self.url) as http:
            moment = parse_timestamp((await http.get("/_emulator/clock")).json()["now"])
        assert moment is not None
        return moment

    async def control(self, method: str, path: str, body: object = None) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.request(method, f"/_emulator{path}", json=body)
        response.raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@dataclass
class Tee:
    """Between the emulator and the monitor: forwards each delivery, records the answer."""

    monitor_url: str
    answers: list[tuple[bytes, int]] = field(default_factory=list)

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        url = f"{self.monitor_url}{WEBHOOK_PATH}?{request.url.query}"
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
        except httpx.TransportError:
            return Response(status_code=502)  # the monitor is down: the emulator retries
        self.answers.append((body, answer.status_code))
        return Response(answer.content, answer.status_code, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route(WEBHOOK_PATH, self.forward, methods=["POST"])])


World = tuple[EmulatorProcess, Product, Tee, HttpSink]


@asynccontextmanager
async def soak_world(database_url: str, workdir: Path) -> AsyncIterator[World]:
    port = free_port()
    tee = Tee(f"http://127.0.0.1:{port}")
    with HttpSink() as sink:
        async with served(tee.app()) as tee_url:
            emulator = EmulatorProcess(workdir, f"{tee_url}{WEBHOOK_PATH}?token={SECRET}")
            monitor = Product(
                workdir,
                port=port,
                CELLECT_DATABASE_URL=database_url,
                CELLECT_WEBHOOK_SECRET=SECRET,
                CELLECT_API_URL=emulator.url,
                CELLECT_TOKEN_URL=emulator.url,
                CELLECT_REFRESH_TOKEN=TOKEN,
                CELLECT_CLOCK_URL=f"{emulator.url}/_emulator/clock",
                CELLECT_APPRISE_URLS=f"json://127.0.0.1:{sink.port}/alerts",
                CELLECT_PORTFOLIO_INTERVAL_S="600",
                CELLECT_EVENTS_INTERVAL_S="600",
                CELLECT_EX_ANTE_INTERVAL_S="1200",
                CELLECT_EX_POST_INTERVAL_S="1200",
                CELLECT_REPEAT_INTERVAL_S="100000000",
                CELLECT_STALE_AFTER_S="86400",
                CELLECT_HTTP_TIMEOUT_S="5",
            )
            try:
                await _until(lambda: _answers(emulator.url), "the emulator to answer")
                await monitor.start()
                yield emulator, monitor, tee, sink
            finally:
                # Off the event loop: the tee in it keeps answering the emulator meanwhile.
                await asyncio.to_thread(monitor.stop)
                await asyncio.to_thread(emulator.stop)


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            return (await http.get("/_emulator/clock")).status_code == 200
    except httpx.TransportError:
        return False


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _at(emulator: EmulatorProcess, monitor: Product, when: datetime) -> None:
    """Wait (bounded) until the emulated clock reads `when`; the monitor must live on."""

    async def reached() -> bool:
        assert monitor.process is not None
        assert monitor.process.poll() is None, f"the monitor died:\n{monitor.tail()}"
        return await emulator.now() >= when

    await _until(reached, f"emulated {when}", within=120)


def _stopped_gracefully(monitor: Product) -> None:
    """SIGTERM: a clean shutdown, status 0."""
    shutdowns = monitor.output().count("Application shutdown complete")
    assert monitor.terminate() == 0
    assert monitor.output().count("Application shutdown complete") == shutdowns + 1


def _kill_writer(monitor: Product) -> None:
    [writer] = writer_processes(monitor.pid)
    os.kill(writer, signal.SIGKILL)


Failure = tuple[int, datetime]  # site, entry start


@dataclass
class Period:
    site_id: int
    since: datetime
    resolved: datetime | None = None


def _periods(sink: HttpSink) -> list[Period]:
    """ImplementationFailed per site as told: (since, resolved) periods, checked to
    alternate — a site told firing again before its RESOLVED is a duplicate."""
    open_: dict[int, Period] = {}
    periods: list[Period] = []
    for request in sink.requests:
        note = json.loads(request.body)
        if "] ImplementationFailed (" not in note["title"]:
            continue
        firing = note["title"].startswith("[FIRING")
        for entry in note["message"].split("\n- ")[1:]:
            site = int(re.search(r"ImplementationFailed: site .*? \((\d+)\) —", entry).group(1))  # type: ignore[union-attr]
            if firing and entry.startswith("NEW "):
                assert site not in open_, f"site {site} told firing twice"
                since = re.search(r" since (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\. Check", entry)
                assert since is not None, entry
                open_[site] = Period(site, _utc(since.group(1)))
                periods.append(open_[site])
            elif firing:
                assert site in open_, f"site {site} re-told without being told first"
            else:
                resolved = re.search(r"Resolved at (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", entry)
                assert resolved is not None, entry
                assert site in open_, f"site {site} resolved without being told firing"
                open_.pop(site).resolved = _utc(resolved.group(1))
    return periods


def _utc(text: str) -> datetime:
    moment = parse_timestamp(text.replace(" ", "T") + ":00Z")
    assert moment is not None
    return moment


async def _truth(emulator: EmulatorProcess, start: datetime, end: datetime) -> set[Failure]:
    """(site, start) of every entry the boxes failed, from the emulator's ExPost."""
    failed: set[Failure] = set()
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        issued = await http.post(paths.ACCESS_TOKEN, headers={"authorization": f"Bearer {TOKEN}"})
        token = issued.json()["accessToken"]
        for site_id in (1, 2, 3):
            window = start
            while window < end:
                upto = min(window + timedelta(hours=12), end)
                params = {
                    "symbol": "ExPostInformationEssPowerAC",
                    "startDate": format_timestamp(window),
                    "endDate": format_timestamp(upto),
                }
                answer = await http.get(
                    paths.time_series(site_id),
                    params=params,
                    headers={"authorization": f"Bearer {token}"},
                )
                answer.raise_for_status()
                for result in answer.json()["results"]:
                    if result["implementationStatus"] == 3:
                        moment = parse_timestamp(result["startDate"])
                        assert moment is not None
                        failed.add((site_id, moment))
                window = upto
    return failed


def _stored(database_url: str) -> tuple[set[str], dict[Failure, datetime]]:
    """The stored deliveries' digests, and each stored failure with when the monitor
    learned of it (its first status-3 history row)."""
    entry, change = ScheduleEntryRecord, ScheduleStatusChange
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            digests = set(session.exec(select(WebhookDelivery.digest)).all())
            rows = session.exec(
                select(entry.site_id, entry.start_at, change.observed_at)
                .join(change, col(change.entry_id) == entry.id)
                .where(col(change.status) == 3)
            ).all()
    finally:
        engine.dispose()
    learned: dict[Failure, datetime] = {}
    for site_id, start, at in rows:
        learned[(site_id, start)] = min(at, learned.get((site_id, start), at))
    return digests, learned


def _digest(body: bytes) -> str:
    return canonical_digest(parse_status_webhook(json.loads(body)))


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
        await _at(emulator, monitor, at(3))
        await emulator.control("POST", "/sites/1/box", {"online": False})
        await _at(emulator, monitor, at(6))
        _kill_writer(monitor)
        await _at(emulator, monitor, at(11))
        await emulator.control("POST", "/sites/1/box", {"online": True})
        await _at(emulator, monitor, at(14))
        stopped = await emulator.now()
        _stopped_gracefully(monitor)
        await monitor.start()
        downtimes.append((stopped, await emulator.now()))
        await _at(emulator, monitor, at(18))
        await emulator.control("POST", "/sites/2/box", {"online": False})
        await emulator.control("POST", "/faults", {**API_FAULTS, "expire_tokens": True})
        await _at(emulator, monitor, at(22))
        _kill_writer(monitor)
        await _at(emulator, monitor, at(26))
        stopped = await emulator.now()
        monitor.kill()
        await monitor.start()
        downtimes.append((stopped, await emulator.now()))
        await _at(emulator, monitor, at(29))
        await emulator.control("POST", "/sites/2/box", {"online": True})
        await _at(emulator, monitor, at(36))
        await emulator.control("DELETE", "/faults")
        await emulator.control("POST", "/webhook-faults", {})
        await _at(emulator, monitor, at(48))

        truth = await _truth(emulator, t0 - timedelta(hours=1), at(48))
        assert truth, "the cut-off boxes failed entries"
        assert monitor.process is not None
        assert monitor.process.poll() is None, "the monitor died on its own"
        _stopped_gracefully(monitor)

    digests, learned = _stored(database_url)
    acknowledged = [body for body, status in tee.answers if status == 200]
    assert acknowledged
    lost = [b for b in acknowledged if _digest(b) not in digests]
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
    periods = _periods(sink)
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
