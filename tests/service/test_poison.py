"""Poison that got past the door (stored by an older version) cannot switch alerting off."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.status import Observation, apply_observations, writer_for
from tests.support.alerts_stack import alert_stack

pytestmark = pytest.mark.anyio


async def test_a_rule_failing_on_one_site_leaves_the_others_alerting(database_url: str) -> None:
    """An entry from year 1 to 9999 (the webhook that once switched alerting off) in the
    history: after a restart the rule it breaks is counted and logged, every other rule
    and site is judged — a new failure elsewhere alerts — and /readyz stays ready."""
    async with alert_stack(database_url) as a:
        monitor = a.stack.monitor
        start = datetime(1, 1, 1, tzinfo=UTC)
        end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        poison = Observation(1, start, end, ImplementationStatus.IN_PROGRESS, a.stack.clock.now())
        with Session(monitor.database) as session:
            writer = writer_for(session)
            apply_observations(
                session=session, observations=[poison], source="webhook", writer=writer
            )
            session.commit()
        await a.stack.restart()
        await a.settle("portfolio", "events", "ex_ante", "ex_post")
        errors = a.stack.sample("cellect_alert_rule_errors_total", rule="InProgressStuck")
        assert errors is not None
        assert errors >= 1
        await a.control("POST", "/sites/2/box", {"online": False})
        await a.post_entry(2, starts_in_s=600)
        await a.step(600)
        await a.step(30)
        [note] = a.notes("ImplementationFailed")
        assert "(2)" in note["message"]
        async with httpx.AsyncClient(base_url=a.stack.url) as http:
            ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()["alerting"]) == (200, True)
