"""The emulator's background loop: status webhooks to a real loopback sink, the demo trader
trading through the app, and `serve()` on a real port."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from receiver.cellect.clock import Clock
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.emulator.server import serve
from tests.support.emulator_api import NOW, entry, open_api
from tests.support.sinks import HttpSink


@pytest.mark.anyio
async def test_run_delivers_status_webhooks_as_the_clock_moves() -> None:
    """Stored entries reach the partner's webhook as 1 InProgress, then 2 once transferred."""
    with HttpSink() as sink:
        async with open_api(sites=1) as api:
            api.emulator.subscribe(sink.url("/hook?token=abc"))
            stop = asyncio.Event()
            task = asyncio.create_task(api.emulator.run(stop))
            try:
                assert (await api.store(1, entry(10, 25))).status_code == 200
                [first] = await sink.until(1)
                assert first.json()["siteId"] == 1
                assert [e["status"] for e in first.json()["schedule"]] == [1]
                await api.http.post("/_emulator/clock", json={"advance_s": 60})
                second = (await sink.until(2))[1]
                assert [e["status"] for e in second.json()["schedule"]] == [2]
            finally:
                stop.set()
                await asyncio.wait_for(task, timeout=10)


@pytest.mark.anyio
async def test_demo_trader_posts_schedules_through_the_app() -> None:
    """With demo_trader, the background loop posts schedules that land on the boxes."""
    emulator = Emulator(sites=2, seed=4, clock=Clock.frozen(NOW), demo_trader=True)
    app = create_emulator_app(emulator)
    stop = asyncio.Event()
    task = asyncio.create_task(emulator.run(stop, app=app))
    partner_boxes = [emulator.boxes[1], emulator.boxes[2]]  # site 3 is partner 2's
    try:
        for _ in range(200):  # bounded: at most ~10 s
            if all(box.entries_between(NOW, NOW.replace(day=3)) for box in partner_boxes):
                break
            await asyncio.sleep(0.05)
        for box in partner_boxes:
            assert box.entries_between(NOW, NOW.replace(day=3))
        assert not emulator.boxes[3].entries_between(NOW, NOW.replace(day=3))
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


@pytest.mark.anyio
async def test_serve_on_a_free_port_reports_ready_and_stops() -> None:
    """serve() on port 0 calls ready with its URL, answers there, and ends when told to."""
    emulator = Emulator(sites=1, clock=Clock.frozen(NOW))
    urls: list[str] = []
    ready = asyncio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    task = asyncio.create_task(serve(emulator, "127.0.0.1", 0, ready=on_ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
        async with httpx.AsyncClient(base_url=urls[0]) as http:
            assert (await http.get("/_emulator/clock")).status_code == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
