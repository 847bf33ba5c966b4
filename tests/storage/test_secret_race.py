"""Replicas starting at once on a database without a webhook secret each generate one:
all of them must keep the same (the stored one), or a delivery one accepts another
refuses."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import select

from receiver.cellect.clock import Clock
from receiver.storage.engine import session_factory
from receiver.storage.secrets import MonitorSecret, kept_secret

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_replicas_racing_for_a_missing_secret_all_keep_the_stored_one(engine: Engine) -> None:
    """Eight connections (replicas, as far as the database can tell) ask for the same
    missing secret at the same moment, round after round: in every round all eight get
    one value, and it is the one stored."""
    racers, rounds = 8, 12
    clock = Clock.frozen(T0)
    start = threading.Barrier(racers, timeout=30)

    def race(name: str) -> str:
        start.wait()  # all eight leave together: the generate-and-keep steps overlap
        return kept_secret(engine, clock, name)

    with ThreadPoolExecutor(racers) as pool:
        for round_ in range(rounds):
            name = f"race-{round_}"
            got = list(pool.map(race, [name] * racers, timeout=60))
            with session_factory(engine)() as session:
                query = select(MonitorSecret.value).where(MonitorSecret.name == name)
                stored = session.exec(query).one()
            assert set(got) == {stored}, f"round {round_}: {len(set(got))} secrets kept"
