"""End to end: Alertmanager's timings (defaults 30 s / 5 min / 4 h) on the assembled monitor."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import Session, col, select

from receiver.storage.alert_tables import AlertRecord
from tests.support.alerts_stack import AlertStack, alert_stack

pytestmark = pytest.mark.anyio
OPEN_OUTAGE = {"type": "Unplanned", "reason": 4, "source": 2}  # no duration: until ended


def _last_told(a: AlertStack, rule: str) -> datetime:
    with Session(a.stack.monitor.database) as session:
        record = session.exec(select(AlertRecord).where(col(AlertRecord.rule) == rule)).one()
    assert record.last_notified_at is not None
    return record.last_notified_at


async def test_unchanged_alert_repeats_only_after_repeat_interval(database_url: str) -> None:
    """A still-firing, unchanged alert is told again after 4 h, and not a moment before."""
    async with alert_stack(database_url) as a:
        await a.control("POST", "/sites/2/outages", OPEN_OUTAGE)
        await a.step(60, "events")
        await a.step(30)
        assert len(a.notes("SiteUnavailable")) == 1
        repeat_at = _last_told(a, "SiteUnavailable").timestamp() + 4 * 3600
        for _ in range(7):
            await a.step(1800, "events")
        await a.step(repeat_at - a.stack.clock.timestamp() - 1, "events")
        assert len(a.notes("SiteUnavailable")) == 1
        await a.step(1)
        first, repeat = a.notes("SiteUnavailable")
        assert repeat["title"] == first["title"] == "[FIRING:1] SiteUnavailable (critical)"
        assert "NEW " in first["message"]
        assert "NEW " not in repeat["message"]


async def test_a_new_alert_in_a_told_group_waits_group_interval(sqlite_url: str) -> None:
    """A second site going down joins the told group's next message, group_interval later."""
    async with alert_stack(sqlite_url) as a:
        await a.control("POST", "/sites/1/outages", OPEN_OUTAGE)
        await a.step(60, "events")
        await a.step(30)
        told_at = _last_told(a, "SiteUnavailable").timestamp()
        await a.control("POST", "/sites/2/outages", OPEN_OUTAGE)
        await a.step(60, "events")
        await a.step(told_at + 300 - a.stack.clock.timestamp() - 1)
        assert len(a.notes("SiteUnavailable")) == 1
        await a.step(1)
        _, second = a.notes("SiteUnavailable")
        assert second["title"] == "[FIRING:2] SiteUnavailable (critical)"
        names = a.stack.emulator.specs
        assert f"NEW SiteUnavailable: site {names[2].name} (2)" in second["message"]
        assert f"- SiteUnavailable: site {names[1].name} (1)" in second["message"]
