"""End to end: availability events polled from the emulator become SiteUnavailable alerts."""

from __future__ import annotations

import pytest

from receiver.alerting.rules import when
from tests.support.alerts_stack import UNPLANNED, alert_stack

pytestmark = pytest.mark.anyio


async def test_unplanned_outage_fires_critical_then_resolves_once(database_url: str) -> None:
    """An unplanned outage is a critical alert; its end is one resolved notice, at once."""
    async with alert_stack(database_url, events_interval_s=60.0) as a:
        began = (await a.control("POST", "/sites/2/outages", UNPLANNED)).json()["startDate"]
        await a.step(60, "events")
        assert a.notes("SiteUnavailable") == []  # group_wait
        await a.step(30)
        [firing] = a.notes("SiteUnavailable")
        assert firing["title"] == "[FIRING:1] SiteUnavailable (critical)"
        assert firing["type"] == "failure"
        name = a.stack.emulator.specs[2].name
        assert f"SiteUnavailable: site {name} (2)" in firing["message"]
        assert "unplanned unavailability (reason: Outage, source: Inverter)" in firing["message"]
        assert f"since {when(a.stack.clock.now().fromisoformat(began))}" in firing["message"]
        assert "Check: the named source (inverter" in firing["message"]

        await a.control("DELETE", "/sites/2/outages/current")
        await a.step(60, "events")  # the next poll sees the event ended: resolved at once
        notes = a.notes("SiteUnavailable")
        assert [n["title"] for n in notes] == [
            "[FIRING:1] SiteUnavailable (critical)",
            "[RESOLVED] SiteUnavailable (critical)",
        ]
        assert notes[1]["type"] == "success"
        assert f"site {name} (2)" in notes[1]["message"]
        assert "Resolved at" in notes[1]["message"]
        for _ in range(3):
            await a.step(300, "events")
        assert len(a.notes("SiteUnavailable")) == 2


async def test_planned_outage_is_a_warning_naming_reason_and_source(sqlite_url: str) -> None:
    """A planned outage is a warning that names its reason and its source."""
    async with alert_stack(sqlite_url, events_interval_s=60.0) as a:
        planned = {"type": "Planned", "reason": 3, "source": 1, "duration_s": 7200}
        await a.control("POST", "/sites/1/outages", planned)
        await a.step(60, "events")
        await a.step(30)
        [note] = a.notes("SiteUnavailable")
        assert note["title"] == "[FIRING:1] SiteUnavailable (warning)"
        assert note["type"] == "warning"
        assert "planned unavailability (reason: Maintenance, source: Cellect)" in note["message"]
        assert "Check: that the trading plan leaves the site out" in note["message"]
