"""End to end: ScheduleHorizonShort waits for the first schedules to settle, and holds on."""

from __future__ import annotations

import pytest

from tests.monitor.alerts_stack import alert_stack

pytestmark = pytest.mark.anyio


async def test_short_horizon_settles_first_then_holds_when_every_plan_ran_out(
    sqlite_url: str,
) -> None:
    """No alert while the first posts arrive; once settled it fires, and stays when plans end."""
    async with alert_stack(sqlite_url) as a:
        await a.post_entry(1, starts_in_s=600, minutes=30)
        await a.settle()  # the first schedule is seen now
        for _ in range(9):
            await a.step(60)  # site 2 has no plan yet: not news during the first 10 min
        assert a.notes("ScheduleHorizonShort") == []
        await a.step(60)
        await a.step(30)
        [note] = a.notes("ScheduleHorizonShort")
        assert note["title"] == "[FIRING:2] ScheduleHorizonShort (warning)"
        assert "no planned schedule ahead" in note["message"]
        for _ in range(4):
            await a.step(600)  # the only plan ends: the worst case, not a resolution
        titles = [n["title"] for n in a.notes("ScheduleHorizonShort")]
        assert titles == ["[FIRING:2] ScheduleHorizonShort (warning)"]
        assert (
            a.stack.sample("cellect_alerts_firing", rule="ScheduleHorizonShort", severity="warning")
            == 2
        )
