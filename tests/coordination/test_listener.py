"""LISTEN cellect_leases: notifications reach the listener, which survives a lost connection."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, text

from receiver.coordination.leases import CHANNEL
from receiver.coordination.listener import Listener, conninfo_of
from receiver.storage.engine import create_engine_for
from tests.support.replicas import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _notify(engine: Engine, payload: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})


def _terminate_listeners(engine: Engine) -> int:
    with engine.begin() as connection:
        query = text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query ILIKE 'LISTEN %'"
        )
        return int(connection.execute(query).scalar_one())


async def test_the_listener_hears_notifies_and_reconnects(postgres_url: str) -> None:
    """Payloads of NOTIFY cellect_leases reach the callback; when its connection is
    killed the listener connects again, says so with an empty payload (something may
    have been missed), and hears the next NOTIFY."""
    engine = create_engine_for(postgres_url)
    heard: list[str] = []
    listener = Listener(conninfo_of(engine.url), heard.append, retry_s=0.1, poll_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.wait_for(listener.listening.wait(), timeout=10)
        _notify(engine, "r-one")
        await eventually(lambda: heard == ["", "r-one"], timeout_s=5)
        assert _terminate_listeners(engine) == 1
        await eventually(lambda: heard.count("") == 2 and listener.listening.is_set(), 10)
        _notify(engine, "r-two")
        await eventually(lambda: heard[-1] == "r-two", timeout_s=5)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        engine.dispose()
