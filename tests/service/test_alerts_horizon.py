"""End to end: ScheduleHorizonShort judges only the sites someone schedules, after its hold."""

from __future__ import annotations

import pytest

from tests.support.alerts_stack import alert_stack, site_names

pytestmark = pytest.mark.anyio
HORIZON = "cellect_site_schedule_horizon_seconds"


async def test_short_horizon_judges_scheduled_sites_and_holds_when_the_plan_ran_out(
    sqlite_url: str,
) -> None:
    """A scheduled site with a short plan fires after the 15-minute hold and stays firing
    once the plan has run out (exported as 0); the site nobody schedules exports no
    horizon and never alerts."""
    async with alert_stack(sqlite_url) as a:
        await a.post_entry(1, starts_in_s=600, minutes=30)
        await a.settle()  # the entry is known: site 1 is scheduled, its plan short
        assert a.stack.sample(HORIZON, site_id="2") is None
        for _ in range(14):
            await a.step(60)  # within the hold
        assert a.notes("ScheduleHorizonShort") == []
        await a.step(60)
        await a.step(30)  # group_wait
        [note] = a.notes("ScheduleHorizonShort")
        assert note["title"] == "[FIRING:1] ScheduleHorizonShort (warning)"
        name = site_names(a)
        assert f"site {name(1)} (1)" in note["message"]
        assert name(2) not in note["message"]
        for _ in range(4):
            await a.step(600)  # the only plan ends: the worst case, not a resolution
        titles = [n["title"] for n in a.notes("ScheduleHorizonShort")]
        assert titles == ["[FIRING:1] ScheduleHorizonShort (warning)"]
        assert a.stack.sample(HORIZON, site_id="1") == 0
        assert a.stack.sample(HORIZON, site_id="2") is None
        firing = {"rule": "ScheduleHorizonShort", "severity": "warning"}
        assert a.stack.sample("cellect_alerts_firing", **firing) == 1
