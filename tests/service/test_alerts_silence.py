"""End to end: silences made over HTTP or with the CLI mute a firing alert until they expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from anyio import to_thread

from receiver.cli import main
from tests.support.alerts_stack import UNPLANNED, AlertStack, alert_stack
from tests.support.stack import ADMIN

pytestmark = pytest.mark.anyio
MATCH_SITE_2 = {"rule": "SiteUnavailable", "site_id": "2"}


async def _outage_muted_then_told(a: AlertStack, ends_at: datetime) -> None:
    """Site 2 goes down; nothing is told while the silence holds, one message once it ends."""
    await a.control("POST", "/sites/2/outages", {**UNPLANNED, "duration_s": 7200})
    await a.step(60, "events")
    for _ in range(4):
        await a.step(60)  # well past group_wait
    assert a.stack.sample("cellect_alerts_firing", rule="SiteUnavailable", severity="critical")
    assert a.notes("SiteUnavailable") == []
    await a.step((ends_at - a.stack.clock.now()).total_seconds() - 1)
    assert a.notes("SiteUnavailable") == []
    await a.step(1)  # the silence has expired: the still-firing alert is told at once
    [note] = a.notes("SiteUnavailable")
    assert note["title"] == "[FIRING:1] SiteUnavailable (critical)"
    assert "NEW SiteUnavailable: site" in note["message"]


async def test_http_silence_mutes_until_its_expiry(database_url: str) -> None:
    """A silence made through POST /api/silences (with the admin token) mutes the alert;
    after it ends, it is told."""
    async with alert_stack(database_url, events_interval_s=60.0) as a:
        body: dict[str, Any] = {
            "matchers": MATCH_SITE_2,
            "duration": "10m",
            "comment": "inverter swap",
            "created_by": "test",
        }
        async with httpx.AsyncClient(base_url=a.stack.url, headers=ADMIN) as http:
            created = await http.post("/api/silences", json=body)
        assert created.status_code == 201
        await _outage_muted_then_told(a, datetime.fromisoformat(created.json()["ends_at"]))


async def test_cli_silence_on_the_same_database_mutes(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cellect-monitor alerts silence` against the monitor's database mutes its alert."""
    # The CLI stamps silences with the real time: start the frozen clock there.
    start = datetime.now(UTC).replace(microsecond=0)
    async with alert_stack(database_url, events_interval_s=60.0, start=start) as a:
        argv = [
            "alerts", "silence", "--rule", "SiteUnavailable", "--site", "2", "--for", "10m",
            "--comment", "inverter swap", "--by", "ops", "--database-url", database_url,
        ]  # fmt: skip
        assert await to_thread.run_sync(main, argv) == 0
        printed = capsys.readouterr().out  # "silence 1 until <ends_at>: {matchers}"
        assert "SiteUnavailable" in printed
        starts_at = datetime.fromisoformat(printed.split()[3].rstrip(":")) - timedelta(minutes=10)
        await a.step(max(0.0, (starts_at - a.stack.clock.now()).total_seconds()))
        async with httpx.AsyncClient(base_url=a.stack.url, headers=ADMIN) as http:
            [listed] = (await http.get("/api/silences")).json()["silences"]
        assert listed["matchers"] == MATCH_SITE_2
        assert listed["created_by"] == "ops"
        await _outage_muted_then_told(a, datetime.fromisoformat(listed["ends_at"]))
