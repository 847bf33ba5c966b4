"""What the soak tests share: the standalone emulator process, a tee (a small balancer)
between it and the monitors that records every answer, and the emulator's truth and the
monitor's history and notifications, read back to hold one against the other."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
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
from tests.support.product import ROOT, Product, free_port
from tests.support.sinks import HttpSink

TOKEN = "chaos-refresh-token-0001"


class EmulatorProcess:
    """`python -m receiver emulator …` on a free port, its output in a log file."""

    def __init__(
        self, workdir: Path, webhook_url: str, *, sites: int = 3, speed: float = 2400.0
    ) -> None:
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
            str(sites),
            "--seed",
            "7",
            "--refresh-token",
            TOKEN,
            "--speed",
            str(speed),
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

    async def read_log(self) -> dict[str, dict[int, list[datetime]]]:
        """The per-site reads it served: resource → site → moments (GET /_emulator/requests)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            raw = (await http.get("/_emulator/requests")).json()
        return {
            resource: {
                int(site): [utc_moment(m) for m in moments] for site, moments in sites.items()
            }
            for resource, sites in raw.items()
        }

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
    """Between the emulator and the monitor(s): forwards each delivery, records the
    answer. With several monitors it takes them in turn and, like a balancer with
    redispatch, tries the next one when a monitor does not take the connection."""

    monitor_url: str
    others: list[str] = field(default_factory=list)
    answers: list[tuple[bytes, int]] = field(default_factory=list)
    _turn: int = 0

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        targets = [self.monitor_url, *self.others]
        self._turn += 1
        answer = None
        for index in range(len(targets)):
            target = targets[(self._turn + index) % len(targets)]
            url = f"{target}{WEBHOOK_PATH}?{request.url.query}"
            try:
                async with httpx.AsyncClient(timeout=30) as http:
                    answer = await http.post(
                        url, content=body, headers={"content-type": "application/json"}
                    )
                break
            except httpx.ConnectError:
                continue  # not taken: nothing was sent, the next one may
            except httpx.TransportError:
                break  # sent, and the answer lost: the emulator retries
        if answer is None:
            return Response(status_code=502)  # the monitor is down: the emulator retries
        self.answers.append((body, answer.status_code))
        return Response(answer.content, answer.status_code, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route(WEBHOOK_PATH, self.forward, methods=["POST"])])


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            return (await http.get("/_emulator/clock")).status_code == 200
    except httpx.TransportError:
        return False


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def at_moment(
    emulator: EmulatorProcess, monitors: Product | list[Product], when: datetime
) -> None:
    """Wait (bounded) until the emulated clock reads `when`; the monitor must live on."""

    watched = monitors if isinstance(monitors, list) else [monitors]

    async def reached() -> bool:
        for monitor in watched:
            assert monitor.process is not None
            assert monitor.process.poll() is None, f"the monitor died:\n{monitor.tail()}"
        return await emulator.now() >= when

    await until(reached, f"emulated {when}", within=120)


Failure = tuple[int, datetime]  # site, entry start


@dataclass
class Period:
    site_id: int
    since: datetime
    resolved: datetime | None = None


def told_periods(sink: HttpSink) -> list[Period]:
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
                open_[site] = Period(site, utc(since.group(1)))
                periods.append(open_[site])
            elif firing:
                assert site in open_, f"site {site} re-told without being told first"
            else:
                resolved = re.search(r"Resolved at (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", entry)
                assert resolved is not None, entry
                assert site in open_, f"site {site} resolved without being told firing"
                open_.pop(site).resolved = utc(resolved.group(1))
    return periods


def utc_moment(text: str) -> datetime:
    moment = parse_timestamp(text)
    assert moment is not None
    return moment


def utc(text: str) -> datetime:
    moment = parse_timestamp(text.replace(" ", "T") + ":00Z")
    assert moment is not None
    return moment


async def failures_in_truth(
    emulator: EmulatorProcess, start: datetime, end: datetime, sites: Iterable[int] = (1, 2, 3)
) -> set[Failure]:
    """(site, start) of every entry the boxes failed, from the emulator's ExPost."""
    failed: set[Failure] = set()
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        issued = await http.post(paths.ACCESS_TOKEN, headers={"authorization": f"Bearer {TOKEN}"})
        token = issued.json()["accessToken"]
        for site_id in sites:
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


def stored_history(database_url: str) -> tuple[set[str], dict[Failure, datetime]]:
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


def delivery_digest(body: bytes) -> str:
    return canonical_digest(parse_status_webhook(json.loads(body)))


async def planned_starts(emulator: EmulatorProcess, site_id: int, hours: float) -> list[datetime]:
    """When the site's planned entries (the emulator's ExAnte) start, over the next hours."""
    now = await emulator.now()
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        issued = await http.post(paths.ACCESS_TOKEN, headers={"authorization": f"Bearer {TOKEN}"})
        token = issued.json()["accessToken"]
        params = {
            "symbol": "ExAnteInformationEssPowerAC",
            "startDate": format_timestamp(now + timedelta(minutes=1)),
            "endDate": format_timestamp(now + timedelta(hours=hours)),
        }
        answer = await http.get(
            paths.time_series(site_id), params=params, headers={"authorization": f"Bearer {token}"}
        )
        answer.raise_for_status()
    return sorted(utc_moment(r["startDate"]) for r in answer.json()["results"])


async def advance_to_work(emulator: EmulatorProcess, site_id: int, lead: timedelta) -> datetime:
    """Move the emulated clock so that the site's next planned entries start `lead` from
    now, and return when they start: the demo trader plans charges and discharges only in
    the cheap and dear hours of its price curve, so a test that cuts a box off at a fixed
    moment of a day might find nothing planned to fail."""
    starts: list[datetime] = []
    deadline = time.monotonic() + 30
    while not starts and time.monotonic() < deadline:  # the trader's first post
        starts = await planned_starts(emulator, site_id, hours=40)
        await asyncio.sleep(0.2)
    now = await emulator.now()
    ahead = [s for s in starts if s >= now + lead]
    assert ahead, f"site {site_id} has nothing planned: {starts}"
    await emulator.control("POST", "/clock", {"advance_s": (ahead[0] - lead - now).total_seconds()})
    return ahead[0]


def monitor_env(
    emulator: EmulatorProcess, sink: HttpSink, database_url: str, secret: str, **overrides: str
) -> dict[str, str]:
    """A soak monitor's settings: on the emulator's API and clock, alerts to the sink,
    notifications never repeated (each told once), site data never stale between polls."""
    return {
        "CELLECT_DATABASE_URL": database_url,
        "CELLECT_WEBHOOK_SECRET": secret,
        "CELLECT_API_URL": emulator.url,
        "CELLECT_TOKEN_URL": emulator.url,
        "CELLECT_REFRESH_TOKEN": TOKEN,
        "CELLECT_CLOCK_URL": f"{emulator.url}/_emulator/clock",
        "CELLECT_APPRISE_URLS": f"json://127.0.0.1:{sink.port}/alerts",
        "CELLECT_PORTFOLIO_INTERVAL_S": "600",
        "CELLECT_EVENTS_INTERVAL_S": "600",
        "CELLECT_EX_ANTE_INTERVAL_S": "1200",
        "CELLECT_EX_POST_INTERVAL_S": "1200",
        "CELLECT_REPEAT_INTERVAL_S": "100000000",
        "CELLECT_STALE_AFTER_S": "86400",
        "CELLECT_HTTP_TIMEOUT_S": "5",
        **overrides,
    }


async def post_entries(
    emulator: EmulatorProcess, site_id: int, start: datetime, count: int, power_kw: float
) -> None:
    """Post `count` quarter-hour entries of `power_kw` from `start` to the site, as a
    trader would (Store Time Series): a box cut off from the cloud cannot take them, so
    each fails."""
    data = [
        {
            "startDate": format_timestamp(start + timedelta(minutes=15 * i)),
            "endDate": format_timestamp(start + timedelta(minutes=15 * (i + 1))),
            "essPowerAC": power_kw,
        }
        for i in range(count)
    ]
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        # Under injected API faults a call may be refused (429, 5xx, a token expired at
        # once): a trader tries again, a bounded number of times.
        answer = None
        for _ in range(20):
            issued = await http.post(
                paths.ACCESS_TOKEN, headers={"authorization": f"Bearer {TOKEN}"}
            )
            if issued.status_code != 200:
                continue
            answer = await http.post(
                paths.time_series(site_id),
                params={"symbol": "EssPowerAC"},
                json={"data": data},
                headers={"authorization": f"Bearer {issued.json()['accessToken']}"},
            )
            if answer.status_code not in (401, 429) and answer.status_code < 500:
                break
        assert answer is not None, "no access token in 20 tries"
        answer.raise_for_status()
