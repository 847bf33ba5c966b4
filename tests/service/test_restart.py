"""A restart is no news: firing alerts stay firing (no false RESOLVED), nothing is told
again, and notification timing goes on where it was."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.alerts_stack import alert_stack

pytestmark = pytest.mark.anyio
ALL_POLLERS = ("portfolio", "events", "ex_ante", "ex_post")


async def test_a_restart_keeps_a_failure_alert_until_its_hold_ends(database_url: str) -> None:
    """ImplementationFailed fires and is told; the monitor stops (SIGTERM) and starts again
    on the same database five minutes later: no RESOLVED, the alert still firing, the
    failure still counted; the RESOLVED comes once, when the hour's hold ends."""
    async with alert_stack(database_url) as a:
        await a.control("POST", "/sites/1/box", {"online": False})
        await a.post_entry(1, starts_in_s=600)
        await a.step(600)  # the entry fails at its start
        await a.step(30)  # group_wait
        assert [n["title"] for n in a.notes("ImplementationFailed")] == [
            "[FIRING:1] ImplementationFailed (critical)"
        ]
        await a.stack.advance(240)
        await a.stack.restart()
        await a.settle(*ALL_POLLERS)
        for _ in range(6):
            await a.step(60)
        assert [n["title"] for n in a.notes("ImplementationFailed")] == [
            "[FIRING:1] ImplementationFailed (critical)"
        ]
        assert a.stack.sample("cellect_alerts_firing", rule="ImplementationFailed",
                              severity="critical") == 1  # fmt: skip
        for _ in range(10):  # an hour after the failure, in steps the hold can end within
            await a.step(300)
        assert [n["title"] for n in a.notes("ImplementationFailed")] == [
            "[FIRING:1] ImplementationFailed (critical)",
            "[RESOLVED] ImplementationFailed (critical)",
        ]


async def test_a_restart_keeps_the_repeat_schedule(database_url: str) -> None:
    """An outage alert told at t0 with a two-hour repeat: restarted an hour later, the
    monitor says nothing then, and repeats once at t0 + 2 h, as it would have."""
    async with alert_stack(database_url, repeat_interval_s=7200.0) as a:
        outage = {"type": "Unplanned", "reason": 4, "source": 4, "duration_s": 5 * 3600}
        await a.control("POST", "/sites/2/outages", outage)
        await a.step(60, "events")
        await a.step(30)
        assert len(a.notes("SiteUnavailable")) == 1
        await a.step(3600 - 90)
        await a.stack.restart()
        await a.settle(*ALL_POLLERS)
        assert len(a.notes("SiteUnavailable")) == 1
        await a.step(1800)
        assert len(a.notes("SiteUnavailable")) == 1
        for _ in range(8):  # past t0 + 2 h, in steps of a group interval
            await a.step(300, "events")
        titles = [n["title"] for n in a.notes("SiteUnavailable")]
        assert titles == ["[FIRING:1] SiteUnavailable (critical)"] * 2


async def test_a_failure_while_the_monitor_was_down_is_read_back(database_url: str) -> None:
    """The monitor is down for three hours while an offline box fails an entry and its
    webhook is lost: after the start, ExPost reads back from when it was last at work,
    so the failure is stored, counted and alerted."""
    async with alert_stack(database_url) as a:
        await a.control("POST", "/sites/1/box", {"online": False})
        await a.control("POST", "/webhook-faults", {"drop_rate": 1.0})
        start = await a.post_entry(1, starts_in_s=1800)
        await a.stack.restart(down_s=3 * 3600)  # the entry fails an hour into the downtime
        await a.control("POST", "/webhook-faults", {})
        await a.settle(*ALL_POLLERS)
        await a.step(30)
        failures = "cellect_schedule_implementation_failures_total"
        assert a.stack.sample(failures, site_id="1") == 1
        [note] = a.notes("ImplementationFailed")
        assert note["title"] == "[FIRING:1] ImplementationFailed (critical)"
        assert start < a.stack.clock.now() - timedelta(hours=1)
