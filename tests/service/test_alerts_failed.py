"""End to end: a box cut off from the cloud fails its next entry, and one alert says so."""

from __future__ import annotations

import pytest

from receiver.alerting.rules import when
from tests.support.alerts_stack import alert_stack

pytestmark = pytest.mark.anyio


async def test_box_offline_failed_entry_is_one_alert_after_group_wait(database_url: str) -> None:
    """An entry the offline box cannot take fails at its start; one critical alert follows."""
    async with alert_stack(database_url) as a:
        await a.control("POST", "/sites/1/box", {"online": False})
        start = await a.post_entry(1, starts_in_s=600)
        await a.step(600)  # the entry's start passes: status 3 by webhook
        failed_at = a.stack.clock.now()
        assert a.notes("ImplementationFailed") == []  # group_wait (30 s) not over yet
        await a.step(29)
        assert a.notes("ImplementationFailed") == []
        await a.step(1)
        [note] = a.notes("ImplementationFailed")
        name = a.stack.emulator.specs[1].name
        assert note["title"] == "[FIRING:1] ImplementationFailed (critical)"
        assert note["type"] == "failure"
        message = note["message"]
        assert f"site {name} (1)" in message
        assert f"schedule entry {when(start)}" in message
        assert "ImplementationFailed" in message
        assert f"since {when(failed_at)}" in message
        assert "Check: the site's availability events and connectivity" in message
        await a.step(60)
        assert len(a.notes("ImplementationFailed")) == 1


async def test_box_offline_site_goes_stale_naming_the_box(sqlite_url: str) -> None:
    """A box cut off leaves Cellect's portfolio: DataStale names the box as what to check."""
    async with alert_stack(sqlite_url, stale_after_s=600.0) as a:
        await a.control("POST", "/sites/1/box", {"online": False})
        for _ in range(11):
            await a.step(60, "portfolio")
        await a.step(30)
        [note] = a.notes("DataStale")
        name = a.stack.emulator.specs[1].name
        assert note["title"] == "[FIRING:1] DataStale (warning)"
        assert f"DataStale: site {name} (1)" in note["message"]
        assert "Cellect reports no live data (left out of PortfolioOverview)" in note["message"]
        assert "Check: the site's Cellect Box (power, network link)" in note["message"]
        await a.control("POST", "/sites/1/box", {"online": True})
        await a.step(60, "portfolio")
        assert [n["title"] for n in a.notes("DataStale")][1:] == ["[RESOLVED] DataStale (warning)"]
