"""End to end: failures of re-planned slots are counted and alerted, held to the emulator's
ground truth — the boxes' own record of every entry they failed."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.models import ScheduleEntry
from receiver.cellect.timestamps import format_timestamp
from receiver.emulator.trader import DemoTrader
from receiver.web.app import WEBHOOK_PATH
from tests.support.alerts_stack import AlertStack, alert_stack
from tests.support.stack import REFRESH_TOKEN, START, WEBHOOK_SECRET

pytestmark = pytest.mark.anyio
FAILED = ImplementationStatus.IMPLEMENTATION_FAILED
SLOT = timedelta(minutes=15)


def _sample(a: AlertStack, name: str, **labels: str) -> float:
    return a.stack.sample(name, **labels) or 0.0


def _counts(a: AlertStack, site_id: str) -> dict[str, float]:
    return {
        status: _sample(a, "cellect_schedule_entries_total", site_id=site_id, status=status)
        for status in ("in_progress", "overwritten", "implementation_failed")
    }


def _truth(a: AlertStack) -> Counter[int]:
    """Failed entries per site, as the emulated boxes recorded them (what ExPost serves)."""
    now = a.stack.clock.now()
    return Counter(
        site_id
        for site_id, box in a.stack.emulator.boxes.items()
        for entry in box.entries_between(START - timedelta(days=1), now)
        if entry.status is FAILED
    )


async def test_four_webhooks_1_5_1_3_for_one_slot_count_the_failure(database_url: str) -> None:
    """Webhooks 1, 5, 1, 3 for one slot: the overwritten entry and a new entry that failed;
    the failure is counted and ImplementationFailed fires. (The second 1 is byte for byte
    the first delivery, so it is acknowledged as a redelivery: docs/schedules.md.)"""
    async with alert_stack(database_url) as a:
        start = a.stack.clock.now() + timedelta(minutes=10)
        slot = {"start": format_timestamp(start), "end": format_timestamp(start + SLOT)}
        url = f"{a.stack.url}{WEBHOOK_PATH}?token={WEBHOOK_SECRET}"
        answers = []
        async with httpx.AsyncClient() as client:
            for status in (1, 5, 1, 3):
                body = {"siteId": 1, "schedule": [{**slot, "status": status}]}
                response = await client.post(url, json=body)
                assert response.status_code == 200
                answers.append(response.json()["duplicate"])
        assert answers == [False, False, True, False]
        await a.step(0)
        assert _counts(a, "1") == {"in_progress": 1, "overwritten": 1, "implementation_failed": 1}
        assert _sample(a, "cellect_schedule_implementation_failures_total", site_id="1") == 1
        await a.step(30)  # group_wait
        assert [n["title"] for n in a.notes("ImplementationFailed")] == [
            "[FIRING:1] ImplementationFailed (critical)"
        ]


async def test_a_replanned_slot_that_fails_is_counted_and_alerted(database_url: str) -> None:
    """A post overwritten by a new post for the same slot and the next one, on a box cut
    off: both new entries fail, each counted once, one alert for the site."""
    async with alert_stack(database_url) as a:
        await a.control("POST", "/sites/1/box", {"online": False})
        start = await a.post_entry(1, starts_in_s=600)
        replan = [
            ScheduleEntry(start_date=start + SLOT * n, end_date=start + SLOT * (n + 1),
                          ess_power_ac=-7.0)
            for n in (0, 1)
        ]  # fmt: skip
        a.stack.emulator.store(1, replan)
        await a.step(600 + 15 * 60)  # both new entries' starts pass on the offline box
        assert _counts(a, "1") == {"in_progress": 3, "overwritten": 1, "implementation_failed": 2}
        assert _sample(a, "cellect_schedule_implementation_failures_total", site_id="1") == 2
        await a.step(30)  # group_wait
        assert [n["title"] for n in a.notes("ImplementationFailed")] == [
            "[FIRING:1] ImplementationFailed (critical)"
        ]


async def test_demo_box_cut_off_every_failure_counted_and_alerted_once(
    database_url: str,
) -> None:
    """The demo trader re-planning every 10 minutes, webhooks dropped, duplicated and
    reordered, site 1's box cut off for three hours: every entry the boxes failed is counted
    once, site 1's alert fires at the first alert cycle after its first failure, once,
    and resolves once, an hour after the box is back."""
    async with alert_stack(database_url, sites=3, repeat_interval_s=10**7, group_wait_s=0.0) as a:
        async with a.stack.emulator_client() as http:
            trader = DemoTrader(
                http=http, refresh_token=REFRESH_TOKEN, clock=a.stack.clock, seed=3,
                horizon_h=3.0, refill_below_h=1.5, replace_rate=0.5, keep_band=False,
            )  # fmt: skip

            async def trade(minutes: int) -> None:
                for _ in range(minutes // 10):
                    await trader.step()
                    await a.step(600)

            await trade(60)
            faults = {"drop_rate": 0.2, "duplicate_rate": 0.3, "reorder": True}
            await a.control("POST", "/webhook-faults", faults)
            await a.control("POST", "/sites/1/box", {"online": False})
            for _ in range(18):
                await trader.step()
                await a.stack.advance(600)
                failed = _sample(a, "cellect_schedule_implementation_failures_total", site_id="1")
                await a.settle()
                if failed and not a.notes("ImplementationFailed"):
                    raise AssertionError("a counted failure was not alerted at the next cycle")
            await a.control("POST", "/sites/1/box", {"online": True})
            await a.control("POST", "/webhook-faults", {})
            await trade(90)  # every ExPost window has read the failures whose webhook was lost
        truth = _truth(a)
        assert truth[1] >= 3, "the cut-off box failed its entries"
        for site_id in a.stack.emulator.boxes:
            counted = _sample(
                a, "cellect_schedule_implementation_failures_total", site_id=str(site_id)
            )
            assert counted == truth[site_id], f"site {site_id}"
        titles = [n["title"] for n in a.notes("ImplementationFailed")]
        assert titles == [
            "[FIRING:1] ImplementationFailed (critical)",
            "[RESOLVED] ImplementationFailed (critical)",
        ]
