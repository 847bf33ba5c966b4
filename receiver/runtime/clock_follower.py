"""Following an emulator's clock from another process (demos and tests only).

A monitor started with `CELLECT_CLOCK_URL` (an emulator's `GET /_emulator/clock`) runs
on the emulator's emulated time — sped up, and advanced when the emulator's clock is —
so that a monitor and a standalone emulator agree on "now" as the embedded demo does.
The clock is read at start and every `every_s` real seconds after, and re-anchored
(never backwards) each time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import httpx

from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import parse_timestamp
from receiver.runtime import waiting

log = logging.getLogger(__name__)


class ClockUnavailable(RuntimeError):
    """The clock to follow did not answer with a time and a speed."""


async def read_clock(http: httpx.AsyncClient, url: str) -> tuple[float, datetime]:
    """(speed, now) as the clock at `url` tells them."""
    try:
        response = await http.get(url)
        body = response.json()
        now, speed = parse_timestamp(body["now"]), float(body["speed"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ClockUnavailable(f"no clock at CELLECT_CLOCK_URL ({type(exc).__name__})") from exc
    if now is None or speed < 0:
        raise ClockUnavailable("CELLECT_CLOCK_URL answered no valid time and speed")
    return speed, now


async def sync(clock: Clock, http: httpx.AsyncClient, url: str, *, first: bool = False) -> None:
    """Re-anchor `clock` on the clock at `url` (the first time, wherever it stands)."""
    speed, now = await read_clock(http, url)
    clock.follow(now, speed, backwards=first)


async def follow(clock: Clock, url: str, stop: asyncio.Event, every_s: float = 0.25) -> None:
    """Re-anchor `clock` on the one at `url` until `stop` is set; failures are logged once."""
    failing = False
    async with httpx.AsyncClient(timeout=5.0) as http:
        while not stop.is_set():
            try:
                await sync(clock, http, url)
                if failing:
                    log.info("the clock at CELLECT_CLOCK_URL answers again")
                failing = False
            except ClockUnavailable as exc:
                if not failing:
                    log.warning("%s; the clock runs on at its last speed", exc)
                failing = True
            await waiting.pause(every_s, stop)
