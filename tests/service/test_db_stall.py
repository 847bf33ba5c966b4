"""A stalled database: the shipped monitor stops saying it is ready, and recovers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.product import Product

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def _readiness(monitor: Product, wanted: int, within: float) -> dict[str, object]:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=monitor.url) as http:
        while time.monotonic() < deadline:
            answer = await http.get("/readyz", timeout=10)
            if answer.status_code == wanted:
                body: dict[str, object] = answer.json()
                return body
            await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz never answered {wanted}:\n{monitor.tail()}")


async def test_alerting_stalled_on_a_locked_table_turns_readyz_503(
    postgres_url: str, tmp_path: Path
) -> None:
    """`cellect-monitor run` on PostgreSQL; another session locks the alerts table, so
    every alert cycle hangs: within three ticks /readyz answers 503 naming alerting, and
    once the lock goes it is ready again."""
    monitor = Product(tmp_path, CELLECT_DATABASE_URL=postgres_url, CELLECT_WEBHOOK_SECRET="s" * 24)
    locker = create_engine(postgres_url)
    try:
        await monitor.start()
        await _readiness(monitor, 200, within=30)
        with locker.connect() as connection:
            connection.execute(text("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE"))
            body = await _readiness(monitor, 503, within=60)
            assert body["alerting"] is False
            assert body["database"] is True
            connection.rollback()
        body = await _readiness(monitor, 200, within=60)
        assert body["alerting"] is True
    finally:
        monitor.stop()
        locker.dispose()
