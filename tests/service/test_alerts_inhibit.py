"""End to end: while the Partner API is down, ApiDown speaks and the site alerts keep quiet."""

from __future__ import annotations

import pytest

from tests.support.alerts_stack import alert_stack

pytestmark = pytest.mark.anyio
ALL_FAILING = {"endpoint": "*", "error_rate": 1.0}


async def test_api_down_inhibits_site_alerts(database_url: str) -> None:
    """ApiDown is told; the DataStale alerts it causes fire, are muted, and resolve unheard."""
    async with alert_stack(database_url, stale_after_s=600.0, retry_attempts=1) as a:
        await a.control("POST", "/faults", ALL_FAILING)
        # Failing from the first poll a minute in: more than 5 minutes of that (the pollers
        # overdue by then) fire ApiDown at minute 7, told after group_wait.
        for _ in range(8):
            await a.step(60)
        [down] = a.notes("ApiDown")
        assert down["title"] == "[FIRING:1] ApiDown (critical)"
        assert "the Cellect Partner API does not answer" in down["message"]
        assert "Check: cellect_api_requests_total" in down["message"]
        for _ in range(10):
            await a.step(60)  # the sites' data is now 16 min old: stale
        firing = a.stack.sample("cellect_alerts_firing", rule="DataStale", severity="warning")
        assert firing == 2
        assert a.notes("DataStale") == []

        await a.control("DELETE", "/faults")
        await a.step(60, "portfolio", "events")
        assert [n["title"] for n in a.notes("ApiDown")] == [
            "[FIRING:1] ApiDown (critical)",
            "[RESOLVED] ApiDown (critical)",
        ]
        for _ in range(6):  # past group_interval: the stale alerts resolved unheard
            await a.step(60, "portfolio")
        assert a.notes("DataStale") == []
        assert not a.stack.sample("cellect_alerts_firing", rule="DataStale", severity="warning")


async def test_a_failure_reported_while_the_api_is_down_is_still_told(database_url: str) -> None:
    """ApiDown fires; a box's failure then reported by webhook (fresh, whatever the API
    does) is told at once, not swallowed by the inhibition."""
    async with alert_stack(database_url, retry_attempts=1) as a:
        await a.control("POST", "/faults", ALL_FAILING)
        await a.control("POST", "/sites/1/box", {"online": False})
        await a.post_entry(1, starts_in_s=600)
        for _ in range(8):
            await a.step(60)
        assert len(a.notes("ApiDown")) == 1
        await a.step(120)  # the entry's start passes: ImplementationFailed by webhook
        await a.step(30)
        [note] = a.notes("ImplementationFailed")
        assert note["title"] == "[FIRING:1] ImplementationFailed (critical)"
