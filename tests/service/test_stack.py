"""The assembled monitor against the emulator: polls fill history, webhooks flow."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from receiver.cellect.models import ScheduleEntry
from receiver.storage.tables import Measurement, ScheduleEntryRecord, Site
from tests.support.stack import monitor_stack, until

pytestmark = pytest.mark.anyio


async def test_first_poll_round_fills_history_and_metrics(database_url: str) -> None:
    """Within the first poll round the sites, their SoC and their gauges are known."""
    async with monitor_stack(database_url, sites=3) as stack:
        monitor = stack.monitor
        await until(lambda: all(p.last_success for p in monitor.pollers), what="first polls")
        with Session(monitor.database) as session:
            assert len(session.exec(select(Site)).all()) == 3
            assert len(session.exec(select(Measurement)).all()) == 3
        soc = stack.sample("cellect_site_state_of_charge_ratio", site_id="1")
        assert soc == pytest.approx(stack.emulator.box(1).soc_pct / 100)
        async with httpx.AsyncClient(base_url=stack.url) as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] is True


async def test_a_posted_schedule_reaches_the_monitor_by_webhook(database_url: str) -> None:
    """Statuses of a posted schedule arrive by webhook, are stored and counted."""
    async with monitor_stack(database_url, sites=2) as stack:
        await until(lambda: stack.monitor.fleet.site_ids, what="portfolio")
        start = stack.clock.now() + timedelta(minutes=10)
        entry = ScheduleEntry(
            start_date=start, end_date=start + timedelta(minutes=15), ess_power_ac=10.0
        )
        stack.emulator.store(1, [entry])
        await stack.advance(1)
        await stack.advance(60)  # past the box's transfer delay: Implemented
        with Session(stack.monitor.database) as session:
            rows = session.exec(select(ScheduleEntryRecord)).all()
        assert [(r.site_id, r.status) for r in rows] == [(1, 2)]
        assert stack.sample("cellect_webhook_requests_total", outcome="accepted") == 2
        assert (
            stack.sample("cellect_schedule_entries_total", site_id="1", status="implemented") == 1
        )
