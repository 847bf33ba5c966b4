"""Bounded state: a site id any sender names is stored, but tracked only when it is the
partner's (or, without polling, within CELLECT_MAX_SITES)."""

from __future__ import annotations

import httpx
import pytest

from receiver.web.app import WEBHOOK_PATH
from tests.support.alerts_stack import alert_stack
from tests.support.served_receiver import body, entry, receiver_app
from tests.support.stack import WEBHOOK_SECRET

pytestmark = pytest.mark.anyio
UNTRACKED = "cellect_untracked_site_reports_total"
FAILURES = "cellect_schedule_implementation_failures_total"


async def test_a_site_outside_the_portfolio_is_stored_but_not_tracked(sqlite_url: str) -> None:
    """With polling on, reports for a site the vendor says is not the partner's are stored
    and counted as untracked, and make no series and no alert — also after the events
    poll has asked the vendor about it."""
    async with alert_stack(sqlite_url) as a:
        url = f"{a.stack.url}{WEBHOOK_PATH}?token={WEBHOOK_SECRET}"
        async with httpx.AsyncClient() as http:
            response = await http.post(url, content=body(999, entry(1, 3)))
        assert response.status_code == 200
        await a.step(60, "events")
        await a.step(30)
        assert a.stack.sample(UNTRACKED) == 1
        assert a.stack.sample(FAILURES, site_id="999") is None
        assert 999 not in a.stack.monitor.fleet.known_site_ids
        assert a.notes("ImplementationFailed") == []


async def test_a_box_offline_since_before_the_start_still_alerts(database_url: str) -> None:
    """Site 1's box is cut off before the monitor first polls (so no portfolio lists it):
    its failure, stored untracked at first, is confirmed as the partner's by the next
    events poll and alerts."""
    async with alert_stack(database_url, offline=[1]) as a:
        assert 1 not in a.stack.monitor.fleet.site_ids
        await a.post_entry(1, starts_in_s=600)
        await a.step(600)  # the entry fails on the offline box
        await a.step(60, "events")  # the vendor answers site 1's events: it is ours
        await a.step(30)  # group_wait
        [note] = a.notes("ImplementationFailed")
        assert note["title"] == "[FIRING:1] ImplementationFailed (critical)"
        assert 1 in a.stack.monitor.fleet.known_site_ids


async def test_without_polling_at_most_max_sites_are_tracked(sqlite_url: str) -> None:
    """Webhooks only, CELLECT_MAX_SITES=2: a third site's reports are stored, counted as
    untracked, and make no series."""
    async with receiver_app(sqlite_url, max_sites=2) as app:
        for site_id in (1, 2, 3):
            assert (await app.post(body(site_id, entry(1, 1)))).status_code == 200
        assert app.counts()[0] == 3
        assert app.sample(UNTRACKED) == 1
        assert (
            app.sample("cellect_schedule_entries_total", site_id="3", status="in_progress") is None
        )
        assert app.sample("cellect_schedule_entries_total", site_id="2", status="in_progress") == 1
