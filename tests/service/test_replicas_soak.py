"""Three replicas on one PostgreSQL, held to the emulator's truth through kill -9.

A standalone emulator (`cellect-monitor emulator`, 200 sites, demo trader) runs at
SPEED× real time; three `cellect-monitor run` share one fresh PostgreSQL database, follow
the emulator's clock, poll it (each the buckets it leases) and take its webhooks
through HAProxy (tests/support/balancer.py: round robin, health checks, redispatch),
behind a tee that records every answer the emulator got. Alerts go to a loopback JSON
sink. Leases are short here (CELLECT_LEASE_TTL_S 3 s, renewed every second) so that a
crashed replica's share moves within a few seconds, which at this speed is tens of
emulated minutes — less than the failure hold (two hours here).

Four boxes are cut off (their entries fail); mid-way the alert leader and another
replica are killed with -9 together, and started again later. Then:

- every delivery a replica acknowledged is stored;
- every ImplementationFailed the boxes recorded is in the history, and alerted: each
  falls in a firing period of its site's alert, and no site was told firing twice —
  whichever replica received its webhook, polled it, or led the alerts at the time;
- the three replicas end up sharing the 256 buckets (nothing held twice, nothing
  left), one of them leading each singleton job.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from receiver.web.app import WEBHOOK_PATH
from tests.support.balancer import Balancer
from tests.support.product import Product, free_port
from tests.support.sinks import HttpSink
from tests.support.soak import (
    EmulatorProcess,
    Tee,
    advance_to_work,
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
from tests.support.tools import require_tool

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SPEED = 300.0  # five emulated minutes a real second
SECRET = "replicas-webhook-secret-0001"
SITES = 200
CUT_OFF = (3, 17, 101, 188)
MOVE = timedelta(seconds=(3 + 1) * SPEED)  # a lease moving: TTL and a renewal, real time
# Emulated seconds; six and eight real seconds, longer than a round takes here.
EX_POST = "ExPostInformationEssPowerAC"
INTERVALS = {"events": 1800, EX_POST: 2400}
HOLD = timedelta(hours=2)  # CELLECT_FAILURE_HOLD_S: longer than a lease moving
World = tuple[EmulatorProcess, list[Product], Tee, HttpSink, datetime]


@asynccontextmanager
async def replicas_world(database_url: str, workdir: Path) -> AsyncIterator[World]:
    require_tool("haproxy", package="haproxy")
    ports = [free_port() for _ in range(3)]
    with Balancer(workdir, ports) as balancer, HttpSink() as sink:
        tee = Tee(balancer.url)
        async with served(tee.app()) as tee_url:
            emulator = EmulatorProcess(
                workdir, f"{tee_url}{WEBHOOK_PATH}?token={SECRET}", sites=SITES, speed=SPEED
            )
            monitors = []
            for index, port in enumerate(ports):
                home = workdir / f"replica-{index}"
                home.mkdir()
                monitors.append(
                    Product(
                        home,
                        port=port,
                        **monitor_env(
                            emulator,
                            sink,
                            database_url,
                            SECRET,
                            CELLECT_PORTFOLIO_INTERVAL_S=str(INTERVALS["events"]),
                            CELLECT_EVENTS_INTERVAL_S=str(INTERVALS["events"]),
                            CELLECT_EX_ANTE_INTERVAL_S=str(INTERVALS[EX_POST]),
                            CELLECT_EX_POST_INTERVAL_S=str(INTERVALS[EX_POST]),
                            CELLECT_FAILURE_HOLD_S=str(HOLD.total_seconds()),
                            CELLECT_LEASE_TTL_S="3",
                            CELLECT_LEASE_RENEW_S="1",
                        ),
                    )
                )
            try:
                await until(lambda: answers(emulator.url), "the emulator to answer")
                # The boxes' next work starts three emulated hours (36 real seconds) from
                # now: the monitors take some of that to start.
                work = await advance_to_work(emulator, CUT_OFF[0], lead=timedelta(hours=3))
                await asyncio.gather(*(m.start() for m in monitors))
                await balancer.wait_all_up()
                yield emulator, monitors, tee, sink, work
            finally:
                for monitor in monitors:
                    await asyncio.to_thread(monitor.stop)
                await asyncio.to_thread(emulator.stop)


async def _held(monitor: Product) -> dict[str, float]:
    """What the replica says it holds: kind → leases (its /metrics)."""
    async with httpx.AsyncClient(base_url=monitor.url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    found = re.findall(r'^cellect_leases_held\{kind="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {kind: float(value) for kind, value in found}


async def _told_firing(sink: HttpSink) -> bool:
    return any("[FIRING" in r.json().get("title", "") for r in sink.requests)


async def _leader(monitors: list[Product]) -> Product:
    for monitor in monitors:
        if (await _held(monitor)).get("alerts") == 1.0:
            return monitor
    raise AssertionError("no replica leads the alerts")


async def _shared(monitors: list[Product]) -> bool:
    """The replicas hold every bucket once between them (each some), and one leads each
    singleton."""
    held = [await _held(m) for m in monitors]
    return (
        sum(h.get("poll", 0) for h in held) == 256
        and all(h.get("poll", 0) > 0 for h in held)
        and sum(h.get("alerts", 0) for h in held) == 1
        and sum(h.get("portfolio", 0) for h in held) == 1
    )


async def test_three_replicas_lose_nothing_and_alert_each_failure_once_through_kill_9(
    postgres_url: str, tmp_path: Path
) -> None:
    """See the module docstring."""
    async with replicas_world(postgres_url, tmp_path) as world:
        emulator, monitors, tee, sink, work = world
        await until(lambda: _shared(monitors), "the replicas to share the leases", within=60)
        t0 = await emulator.now()

        def at(hours: float) -> datetime:
            return work + timedelta(hours=hours)  # from when the boxes' work starts

        # The cut-off and the trader's post below take a few real seconds on a loaded
        # machine, and every real second is five emulated minutes here; an entry must
        # start at least five emulated minutes after it is posted (30091): so both come
        # an hour ahead.
        assert t0 < at(-1.0), "the monitors took too long to start"
        await at_moment(emulator, monitors, at(-1.0))
        # Four boxes cut off, then given work a trader posts now, for the hour and a half
        # from `work`: they cannot take it, so every entry of it fails.
        cut_off = list(CUT_OFF)
        for site in cut_off:
            await emulator.control("POST", f"/sites/{site}/box", {"online": False})
        first = at(0.0)
        for site in cut_off:
            await post_entries(emulator, site, first, count=6, power_kw=-5.0)
        await at_moment(emulator, monitors, at(0.5))
        # The leader is killed with alerts firing and told: its successor must neither
        # tell them again nor resolve them before their hold.
        await until(lambda: _told_firing(sink), "a failure to be told", within=30)
        leader = await _leader(monitors)
        other = next(m for m in monitors if m is not leader)
        leader.kill()
        other.kill()
        survivor = [m for m in monitors if m not in (leader, other)]
        await until(lambda: _shared(survivor), "the survivor to take everything", within=30)
        await at_moment(emulator, survivor, at(1.5))
        await asyncio.gather(leader.start(), other.start())
        await until(lambda: _shared(monitors), "the replicas to share again", within=30)
        await at_moment(emulator, monitors, at(2.0))
        for site in cut_off:
            await emulator.control("POST", f"/sites/{site}/box", {"online": True})
        await at_moment(emulator, monitors, at(4.5))

        reads = await emulator.read_log()
        truth = await failures_in_truth(emulator, t0, at(4.5), cut_off)
        assert truth, "the cut-off boxes failed entries"
        for monitor in monitors:
            assert monitor.process is not None
            assert monitor.process.poll() is None, f"a replica died:\n{monitor.tail()}"

    digests, learned = stored_history(postgres_url)
    acknowledged = [body for body, status in tee.answers if status == 200]
    assert acknowledged
    lost = [b for b in acknowledged if delivery_digest(b) not in digests]
    assert lost == []
    for monitor in monitors:
        assert "Exception in ASGI application" not in monitor.output(), monitor.tail(80)

    # Polls resumed after the kill: no site went unread longer than its last read by the
    # old owner (up to an interval before the kill), the lease's move, the new owner's
    # next round (up to an interval) and that round itself (a few real seconds: allowed
    # another move's worth) — per the emulator, whichever replica read it.
    for resource, interval in INTERVALS.items():
        limit = timedelta(seconds=2 * interval) + 2 * MOVE
        by_site = reads[resource]
        assert len(by_site) == SITES, f"{resource}: sites never read"
        for site, moments in by_site.items():
            seen = [m for m in moments if t0 <= m <= at(4.5)]
            gaps = [b - a for a, b in zip([t0, *seen], [*seen, at(4.5)], strict=True)]
            assert max(gaps) <= limit, f"{resource}: site {site} unread for {max(gaps)}"
    missing = sorted(truth - set(learned))
    assert missing == [], f"failures the boxes recorded, not in the history (t0 {t0})"
    periods = told_periods(sink)  # asserts that no site was told firing twice
    slack = timedelta(minutes=30)  # a lease moving (~4 real s) is ~40 emulated minutes
    for failure in sorted(truth):
        site_id, learned_at = failure[0], learned[failure]
        covering = [
            p
            for p in periods
            if p.site_id == site_id
            and p.since <= learned_at + slack
            and (p.resolved is None or p.resolved >= learned_at + HOLD - slack)
        ]
        assert covering, f"failure {failure} learned at {learned_at} never alerted: {periods}"
    assert {p.site_id for p in periods} <= set(cut_off)


async def test_a_replica_paused_30_s_loses_its_leases_and_comes_back_without_writing(
    postgres_url: str, tmp_path: Path
) -> None:
    """SIGSTOP one of two replicas for 30 s: the other takes every lease within a TTL and
    a renewal; resumed, the paused one learns it lost them (its writes under the old
    epochs are refused: tests/coordination/test_replica_fencing.py shows the refusal
    itself), takes its share again, and no delivery either acknowledged is lost."""
    monitors = []
    for index in range(2):
        home = tmp_path / f"replica-{index}"
        home.mkdir()
        monitors.append(
            Product(
                home,
                CELLECT_DATABASE_URL=postgres_url,
                CELLECT_WEBHOOK_SECRET=SECRET,
                CELLECT_LEASE_TTL_S="5",
                CELLECT_LEASE_RENEW_S="1",
            )
        )
    paused, other = monitors
    try:
        await asyncio.gather(*(m.start() for m in monitors))
        await until(lambda: _shared(monitors), "two replicas to share", within=30)
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            await until(lambda: _holds_everything(other), "the other to take all", within=20)
            took = time.monotonic() - stopped
            assert took <= 5 + 1 + 3, f"the leases moved after {took:.1f} s"
            await asyncio.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        await until(lambda: _shared(monitors), "the paused replica to rejoin", within=30)
        assert "lost the lease" in paused.output()
        assert "lost the lease" not in other.output()
    finally:
        for monitor in monitors:
            await asyncio.to_thread(monitor.stop)


async def _holds_everything(monitor: Product) -> bool:
    held = await _held(monitor)
    return held.get("poll") == 256 and held.get("alerts") == 1 and held.get("portfolio") == 1
