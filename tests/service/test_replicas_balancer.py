"""Three replicas of `cellect-monitor run` on one PostgreSQL, behind a real HAProxy: any
replica takes any delivery, stores it once, and acknowledges only what is committed —
also while one is killed or all are restarted one by one.

Every replica is the shipped command (`python -m receiver run`) configured by
environment variables, webhooks only; HAProxy is Debian's, configured as
tests/support/balancer.py explains (round-robin, health checks, retries of the
idempotent deliveries). Every wait is bounded; every process and the database go away
at the end of each test, also when it fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.balancer import Balancer
from tests.support.product import replica_set

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

SECRET = "replicas-balancer-test-secret-7f3a9c"
HOOK = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}
PATH = "/webhooks/time-series"
BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
SITES = 7


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def delivery(n: int, status: int = 1) -> bytes:
    """A delivery reporting `status` for slot `n` (a slot of its own: site and time)."""
    start = BASE + n * SLOT
    entry = {"start": stamp(start), "end": stamp(start + SLOT), "status": status}
    return json.dumps({"siteId": 1 + n % SITES, "schedule": [entry]}).encode()


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def stored_bodies(url: str) -> Counter[bytes]:
    """The bodies in `webhook_deliveries`, each with how many rows hold it."""
    return Counter(
        str(body).encode() for (body,) in query(url, "SELECT body FROM webhook_deliveries")
    )


def env(database_url: str, **extra: str) -> dict[str, str]:
    """The replicas' configuration: one database, webhooks only (no refresh token)."""
    return {"CELLECT_DATABASE_URL": database_url, **extra}


def assert_no_secret_logged(secret: str, *logs: str) -> None:
    for log in logs:
        assert secret not in log, "a webhook secret reached a log"


async def test_three_replicas_started_at_once_on_an_empty_database_share_one_secret(
    postgres_url: str, tmp_path: Path
) -> None:
    """Three replicas started at the same moment on an empty database with no webhook
    secret configured all migrate and start, and all end up with the one secret kept in
    the database: each accepts a delivery with it, and refuses another."""
    async with replica_set(tmp_path, 3, **env(postgres_url)) as monitors:
        [(revision,)] = query(postgres_url, "SELECT version_num FROM alembic_version")
        kept = query(
            postgres_url, "SELECT value FROM monitor_secrets WHERE name = 'webhook_secret'"
        )
        assert len(kept) == 1
        secret = str(kept[0][0])
        registered = query(postgres_url, "SELECT pid, schema_revision FROM replicas")
        assert sorted(registered) == sorted((m.pid, revision) for m in monitors)
        async with httpx.AsyncClient(timeout=10) as http:
            for n, monitor in enumerate(monitors):
                body = delivery(n)
                wrong = await http.post(
                    monitor.url + PATH, content=body, headers={**HOOK, "authorization": "Bearer x"}
                )
                assert wrong.status_code == 401, wrong.text
                right = await http.post(
                    monitor.url + PATH,
                    content=body,
                    headers={**HOOK, "authorization": f"Bearer {secret}"},
                )
                assert right.status_code == 200, (monitor.port, right.text)
        assert stored_bodies(postgres_url) == Counter(delivery(n) for n in range(3))
    assert_no_secret_logged(secret, *(m.output() for m in monitors))


async def test_the_same_delivery_posted_to_two_replicas_at_once_is_stored_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """Each delivery is posted to two replicas at the same moment (and a second delivery
    of the same slot, another status, to two replicas too), many times over: every post
    is acknowledged 200, exactly one of each pair as new, each delivery is one row, its
    report applied once — one entry per slot, Implemented, one history row per delivery."""
    rounds, in_flight = 200, 8
    async with replica_set(tmp_path, 3, **env(postgres_url, CELLECT_WEBHOOK_SECRET=SECRET)) as ms:
        urls = [m.url + PATH for m in ms]
        answers: dict[bytes, list[httpx.Response]] = {}
        limit = asyncio.Semaphore(in_flight)

        async def post(http: httpx.AsyncClient, url: str, body: bytes) -> None:
            answers.setdefault(body, []).append(
                await http.post(url, content=body, headers=HOOK, timeout=30)
            )

        async def one_round(http: httpx.AsyncClient, n: int) -> None:
            posted, done = delivery(n, status=1), delivery(n, status=2)
            a, b, c = urls[n % 3], urls[(n + 1) % 3], urls[(n + 2) % 3]
            async with limit:
                await asyncio.gather(
                    post(http, a, posted), post(http, b, posted),
                    post(http, b, done), post(http, c, done),
                )  # fmt: skip

        # Enough connections that no post waits for another's: both of a pair go out at once.
        limits = httpx.Limits(max_connections=4 * in_flight)
        async with httpx.AsyncClient(limits=limits) as http:
            started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                for n in range(rounds):
                    group.create_task(one_round(http, n))
            took = time.monotonic() - started

    statuses = Counter(r.status_code for pair in answers.values() for r in pair)
    assert statuses == Counter({200: 4 * rounds}), statuses
    bodies = stored_bodies(postgres_url)
    assert bodies == Counter(dict.fromkeys(answers, 1)), "a delivery is stored twice or not"
    ids = {
        str(b).encode(): i
        for b, i in query(postgres_url, "SELECT body, id FROM webhook_deliveries")
    }
    for body, pair in answers.items():
        new = [r.json()["deliveryId"] for r in pair if r.json()["duplicate"] is False]
        assert new == [ids[body]], (body, [r.json() for r in pair])
    entries = query(
        postgres_url,
        "SELECT e.site_id, e.start_at, e.generation, e.status, count(h.id),"
        " count(DISTINCT h.delivery_id)"
        " FROM schedule_entries e JOIN schedule_status_changes h ON h.entry_id = e.id"
        " GROUP BY e.id ORDER BY e.start_at",
    )
    assert len(entries) == rounds, "a slot has more than one entry"
    assert {(gen, status, rows, ids) for _, _, gen, status, rows, ids in entries} == {
        (0, 2, 2, 2)
    }, entries[:5]
    print(f"{4 * rounds} posts in {took:.1f} s")


@dataclass
class Tally:
    """What a stream of clients saw: the acknowledged bodies and every refusal."""

    acknowledged: set[bytes] = field(default_factory=set)
    first_try_failures: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # every failed attempt
    unacknowledged: set[bytes] = field(default_factory=set)  # after all retries

    async def more_acknowledged(self, more: int, within: float = 20.0) -> None:
        """Wait (bounded) until `more` further deliveries are acknowledged."""
        target = len(self.acknowledged) + more
        await eventually(lambda: len(self.acknowledged) >= target, within)

    def summary(self) -> str:
        return (
            f"{len(self.acknowledged)} acknowledged, {len(self.unacknowledged)} never;"
            f" failed attempts {dict(self.failures)}"
            f" (first tries: {dict(self.first_try_failures)})"
        )


async def stream(
    http: httpx.AsyncClient,
    numbers: Iterator[int],
    tally: Tally,
    keep_going: Callable[[], bool],
    *,
    pause_s: float = 0.0,
    attempts: int = 3,
    posted: Callable[[], None] = lambda: None,
) -> None:
    """Post distinct deliveries while `keep_going()`; a refused one is retried (up to
    `attempts` in all, after a short pause), as a webhook sender retries; `posted()`
    after each delivery."""
    while keep_going():
        body = delivery(next(numbers))
        for attempt in range(attempts):
            try:
                response = await http.post(PATH, content=body, headers=HOOK, timeout=30)
                outcome = str(response.status_code)
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            if outcome.startswith("2"):
                tally.acknowledged.add(body)
                break
            tally.failures[outcome] += 1
            if attempt == 0:
                tally.first_try_failures[outcome] += 1
            await asyncio.sleep(0.2)
        else:
            tally.unacknowledged.add(body)
        posted()
        await asyncio.sleep(pause_s)


async def test_a_replica_killed_mid_burst_loses_no_acknowledged_delivery(
    postgres_url: str, tmp_path: Path
) -> None:
    """Six clients post distinct deliveries through HAProxy; one replica is killed with
    -9 mid-burst: every delivery acknowledged 2xx is in the database, at most the ones
    in flight on the killed replica are refused (and then retried), and the replica,
    started again, serves directly and through HAProxy."""
    clients, total = 6, 600
    numbers = count()
    tally = Tally()
    async with replica_set(tmp_path, 3, **env(postgres_url, CELLECT_WEBHOOK_SECRET=SECRET)) as ms:
        with Balancer(tmp_path, [m.port for m in ms]) as balancer:
            await balancer.wait_all_up()
            victim = ms[1]

            a_third = asyncio.Event()

            def sent() -> int:
                return len(tally.acknowledged) + len(tally.unacknowledged)

            def posted() -> None:
                if sent() >= total // 3:
                    a_third.set()

            async def killer() -> None:
                await asyncio.wait_for(a_third.wait(), timeout=30)
                victim.kill()

            limits = httpx.Limits(max_connections=clients)
            async with httpx.AsyncClient(base_url=balancer.url, limits=limits) as http:
                started = time.monotonic()

                def more() -> bool:
                    return sent() < total and time.monotonic() - started < 45

                async with asyncio.TaskGroup() as group:
                    group.create_task(killer())
                    for _ in range(clients):
                        group.create_task(stream(http, numbers, tally, more, posted=posted))
                took = time.monotonic() - started
                assert victim.process is not None
                assert victim.process.returncode == -9
                await balancer.wait_for_state("m1", "DOWN")
                after_kill = balancer.stats()

                await victim.start()
                await balancer.wait_for_state("m1", "UP")
                again = delivery(next(numbers))
                direct = await http.post(victim.url + PATH, content=again, headers=HOOK)
                assert direct.status_code == 200, direct.text
                tally.acknowledged.add(again)
                for _ in range(6):  # round-robin: two of six reach the restarted one
                    body = delivery(next(numbers))
                    via = await http.post(PATH, content=body, headers=HOOK)
                    assert via.status_code == 200, via.text
                    tally.acknowledged.add(body)
                assert balancer.stats()["m1"].total > after_kill["m1"].total
            logs = [m.output() for m in ms] + [balancer.output()]

    stored = stored_bodies(postgres_url)
    lost = tally.acknowledged - set(stored)
    report = f"{tally.summary()}; {took:.1f} s; haproxy: {after_kill}"
    assert not lost, f"{len(lost)} acknowledged deliveries are not stored; {report}"
    assert len(tally.acknowledged) >= total, report
    assert not tally.unacknowledged, report
    # Only what was in flight on the killed replica may fail: one request per client.
    assert sum(tally.first_try_failures.values()) <= clients, report
    assert set(stored.values()) == {1}
    # The kill did meet traffic: HAProxy sent requests meant for m1 elsewhere.
    assert after_kill["m1"].redispatches > 0, report
    assert_no_secret_logged(SECRET, *logs)
    print(report)


async def test_a_rolling_restart_behind_haproxy_answers_no_5xx(
    postgres_url: str, tmp_path: Path
) -> None:
    """Clients post a steady stream through HAProxy while each replica in turn is stopped
    (SIGTERM), seen DOWN by HAProxy, started again and seen UP: not one post fails, and
    every acknowledged delivery is stored."""
    clients = 3
    numbers = count()
    tally = Tally()
    restarted: list[tuple[int, int]] = []  # (old pid, new pid)
    async with replica_set(tmp_path, 3, **env(postgres_url, CELLECT_WEBHOOK_SECRET=SECRET)) as ms:
        with Balancer(tmp_path, [m.port for m in ms]) as balancer:
            await balancer.wait_all_up()
            rolling = True

            async def roll() -> None:
                nonlocal rolling
                try:
                    for name, monitor in zip(balancer.names, ms, strict=True):
                        await tally.more_acknowledged(20)  # the stream flows
                        old = monitor.pid
                        assert await asyncio.to_thread(monitor.terminate) == 0, monitor.tail()
                        await balancer.wait_for_state(name, "DOWN")
                        await monitor.start()
                        await balancer.wait_for_state(name, "UP")
                        restarted.append((old, monitor.pid))
                    await tally.more_acknowledged(20)  # and flows after the last restart
                finally:
                    rolling = False

            limits = httpx.Limits(max_connections=clients)
            async with httpx.AsyncClient(base_url=balancer.url, limits=limits) as http:
                started = time.monotonic()

                def more() -> bool:
                    return rolling and time.monotonic() - started < 60

                async with asyncio.TaskGroup() as group:
                    group.create_task(roll())
                    for _ in range(clients):
                        group.create_task(stream(http, numbers, tally, more, pause_s=0.02))
                took = time.monotonic() - started
            haproxy = balancer.stats()
            logs = [m.output() for m in ms] + [balancer.output()]

    report = f"{tally.summary()}; {took:.1f} s; haproxy: {haproxy}"
    assert len(restarted) == 3, restarted
    assert all(old != new for old, new in restarted), restarted
    assert not tally.failures, report
    assert haproxy["BACKEND"].responses_5xx == 0, report
    # The stream did meet stopped replicas: HAProxy sent those requests elsewhere.
    assert haproxy["BACKEND"].redispatches > 0, report
    lost = tally.acknowledged - set(stored_bodies(postgres_url))
    assert not lost, f"{len(lost)} acknowledged deliveries are not stored; {report}"
    assert_no_secret_logged(SECRET, *logs)
    print(report)


async def eventually(done: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.02)
