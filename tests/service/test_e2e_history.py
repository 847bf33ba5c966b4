"""The assembled monitor's pollers filling history against the emulator: events stored
once, a vanished site going stale, the ExAnte horizon, and ExPost catching lost webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.models import ScheduleEntry
from receiver.storage.tables import AvailabilityEventRecord, ScheduleEntryRecord, Site
from tests.support.stack import Stack, monitor_stack, until

pytestmark = pytest.mark.anyio


async def advance_until(
    stack: Stack, condition: Callable[[], Any], *, step: float, max_steps: int, what: str
) -> None:
    """Advance the clock `step` at a time until `condition` holds (bounded)."""
    for _ in range(max_steps):
        await stack.advance(step)
        for _ in range(20):
            if condition():
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {max_steps} steps of {step} s")


def poller(stack: Stack, name: str) -> Any:
    return next(p for p in stack.monitor.pollers if p.name == name)


async def rounds_pass(stack: Stack, name: str, count: int, step: float) -> None:
    """Advance until the named poller has completed `count` more successful rounds."""
    p = poller(stack, name)
    target = p.rounds + count

    def done() -> bool:
        return p.rounds >= target and p.last_success == stack.clock.now()

    await advance_until(stack, done, step=step, max_steps=count * 3, what=f"{name} rounds")


def rows(stack: Stack, table: Any) -> list[Any]:
    with Session(stack.monitor.database) as session:
        return list(session.exec(select(table)).all())


def entry(stack: Stack, in_min: float, minutes: float) -> ScheduleEntry:
    start = stack.clock.now() + timedelta(minutes=in_min)
    return ScheduleEntry(
        start_date=start, end_date=start + timedelta(minutes=minutes), ess_power_ac=5.0
    )


async def test_events_are_stored_once_however_often_polled(database_url: str) -> None:
    """An availability event polled round after round is one row, updated when it ends."""
    async with monitor_stack(database_url, sites=2) as stack:
        await until(lambda: poller(stack, "events").last_success, what="first poll")
        async with stack.emulator_client() as control:
            started = await control.post("/_emulator/sites/1/outages", json={"duration_s": 600})
            assert started.status_code in (200, 201), started.text
        await rounds_pass(stack, "events", 5, step=60)
        stored = rows(stack, AvailabilityEventRecord)
        assert [(r.site_id, r.availability_status) for r in stored] == [(1, 2)]
        assert stack.sample("cellect_site_available", site_id="1") == 0
        await rounds_pass(stack, "events", 10, step=60)  # the outage is over by now
        stored = rows(stack, AvailabilityEventRecord)
        assert len(stored) == 1
        assert stored[0].end_at is not None


async def test_a_site_that_drops_out_goes_stale(database_url: str) -> None:
    """An offline box leaves the portfolio: its live gauges go, its info and history stay."""
    async with monitor_stack(database_url, sites=2, stale_after_s=300) as stack:
        await until(lambda: poller(stack, "portfolio").last_success, what="first poll")
        assert stack.sample("cellect_site_state_of_charge_ratio", site_id="1") is not None
        last_update = stack.sample("cellect_site_last_update_timestamp_seconds", site_id="1")
        async with stack.emulator_client() as control:
            answer = await control.post("/_emulator/sites/1/box", json={"online": False})
            assert answer.status_code == 200
        await rounds_pass(stack, "portfolio", 6, step=60)
        assert stack.monitor.fleet.site_ids == [2]
        assert stack.sample("cellect_site_state_of_charge_ratio", site_id="1") is None
        assert stack.sample("cellect_site_power_watts", site_id="1") is None
        assert stack.sample("cellect_site_state_of_charge_ratio", site_id="2") is not None
        assert stack.sample("cellect_site_last_update_timestamp_seconds", site_id="1") == (
            last_update
        )
        info = [
            s
            for m in stack.registry.collect()
            if m.name == "cellect_site_info"
            for s in m.samples
            if s.labels.get("site_id") == "1"
        ]
        assert len(info) == 1
        present = {site.site_id: site.present for site in rows(stack, Site)}
        assert present == {1: False, 2: True}


async def test_ex_ante_fills_the_schedule_horizon(database_url: str) -> None:
    """A posted plan reaching two hours ahead shows as the site's schedule horizon."""
    async with monitor_stack(database_url, sites=1, subscribe=False) as stack:
        await until(lambda: poller(stack, "ex_ante").last_success, what="first poll")
        plan = [entry(stack, 10, 50), entry(stack, 60, 60)]
        stack.emulator.store(1, plan)
        await rounds_pass(stack, "ex_ante", 1, step=150)
        now = stack.clock.now()
        horizon = stack.sample("cellect_site_schedule_horizon_seconds", site_id="1")
        assert horizon == pytest.approx((plan[-1].end_date - now).total_seconds())
        assert stack.monitor.fleet.view().sites[0].horizon_end == plan[-1].end_date


async def test_ex_post_brings_final_statuses_of_lost_webhooks(database_url: str) -> None:
    """Without webhooks, the executed schedule's statuses still reach the history."""
    async with monitor_stack(database_url, sites=1, subscribe=False) as stack:
        await until(lambda: poller(stack, "ex_post").last_success, what="first poll")
        plan = [entry(stack, 10, 15), entry(stack, 25, 15)]
        stack.emulator.store(1, plan)
        done = plan[-1].end_date

        def final() -> bool:
            found = rows(stack, ScheduleEntryRecord)
            return (
                len(found) == 2
                and all(r.end_at <= done for r in found)
                and all(r.status == ImplementationStatus.IMPLEMENTED for r in found)
            )

        await advance_until(stack, final, step=300, max_steps=12, what="final statuses")
        assert {r.updated_source for r in rows(stack, ScheduleEntryRecord)} == {"poll"}
        assert stack.sample("cellect_webhook_requests_total", outcome="accepted") in (None, 0.0)


async def test_an_offline_site_keeps_its_schedule_watched(database_url: str) -> None:
    """A site whose box is offline leaves the portfolio, yet its plan is still polled: an
    entry stuck InProgress near its start shows up (the InProgressStuck condition)."""
    async with monitor_stack(
        database_url, sites=2, subscribe=False, ex_ante_interval_s=60, stale_after_s=300
    ) as stack:
        await until(lambda: poller(stack, "ex_ante").last_success, what="first poll")
        async with stack.emulator_client() as control:
            answer = await control.post("/_emulator/sites/1/box", json={"online": False})
            assert answer.status_code == 200
        stack.emulator.store(1, [entry(stack, 8, 15)])
        await rounds_pass(stack, "ex_ante", 5, step=60)
        assert stack.monitor.fleet.site_ids == [2]
        assert stack.sample("cellect_site_state_of_charge_ratio", site_id="1") is None
        assert stack.sample("cellect_schedule_entries_in_progress_near_start", site_id="1") == 1
        assert stack.monitor.fleet.view().sites[0].in_progress_near_start
