"""End to end: the password in an Apprise URL (and the admin token) never reaches logs,
/metrics or the HTTP API."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.support.alerts_stack import UNPLANNED, alert_stack
from tests.support.stack import ADMIN, ADMIN_TOKEN, until

pytestmark = pytest.mark.anyio
SECRET = "Sup3r-s3cret-pa55"


async def test_apprise_url_secret_stays_out_of_logs_metrics_and_api(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused, retried and finally sent notification leaves no trace of the URL's password,
    and the API's answers and the logs none of the admin token."""
    caplog.set_level(logging.DEBUG)
    async with alert_stack(
        sqlite_url, credentials=f"alerts:{SECRET}@", events_interval_s=60.0
    ) as a:
        a.sink.fail_with(500)  # the first attempt fails: the error paths log too
        await a.control("POST", "/sites/2/outages", UNPLANNED)
        await a.step(60, "events")
        await a.stack.advance(30)
        await a.judged()
        await a.stack.advance(1)
        failed = {"outcome": "failed"}
        await until(lambda: a.stack.sample("cellect_notifications_total", **failed) == 1)
        a.sink.fail_with(None)
        await a.step(20)  # past the first retry's backoff (10 s)
        await a.delivered()
        [note] = a.notes("SiteUnavailable")
        assert "SiteUnavailable" in note["title"]
        assert a.sink.accepted[0].headers["authorization"].startswith("Basic ")
        body: dict[str, Any] = {"matchers": {"site_id": "2"}, "duration": "1h", "comment": "x"}
        async with httpx.AsyncClient(base_url=a.stack.url, headers=ADMIN) as http:
            answers = [
                await http.get("/metrics"),
                await http.post("/api/silences", json=body),
                await http.get("/api/silences"),
                await http.post("/api/silences", json={"matchers": {}}),
                await http.get("/readyz"),
            ]
        assert a.stack.sample("cellect_notifications_total", outcome="failed") == 1
        assert a.stack.sample("cellect_notifications_total", outcome="sent") == 1
    for answer in answers:
        assert SECRET not in answer.text
        assert ADMIN_TOKEN not in answer.text
    assert caplog.records  # the failure was logged ...
    assert SECRET not in caplog.text  # ... without the password
    assert all(SECRET not in str(r.__dict__) for r in caplog.records)
    assert ADMIN_TOKEN not in caplog.text
