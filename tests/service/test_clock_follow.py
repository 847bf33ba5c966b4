"""A monitor following a standalone emulator's clock (CELLECT_CLOCK_URL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from receiver.cellect.clock import Clock
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.web.app import create_app
from tests.support.stack import START, served, stack_settings, until

pytestmark = pytest.mark.anyio


async def test_the_monitor_runs_on_the_emulators_time(sqlite_url: str) -> None:
    """Started against an emulator at another time and speed, the monitor's clock reads
    the emulator's; when the emulator's clock jumps a day, the monitor's follows."""
    emulator_clock = Clock.frozen(START)
    emulator_app = create_emulator_app(Emulator(sites=1, clock=emulator_clock))
    async with served(emulator_app) as emulator_url:
        clock = Clock()  # the wall clock, as `cellect-monitor run` starts with
        settings = stack_settings(
            sqlite_url, refresh_token=None, clock_url=f"{emulator_url}/_emulator/clock"
        )
        app = create_app(settings, clock=clock, registry=CollectorRegistry())
        async with served(app):
            assert clock.now() == START
            assert clock.speed == 0
            emulator_clock.advance(86400)
            await until(lambda: clock.now() >= START + timedelta(days=1), what="the day jump")
