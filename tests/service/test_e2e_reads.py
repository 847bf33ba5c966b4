"""The product as shipped, read back: `cellect-monitor run --emulator` (two sites, no demo
trader) receives webhooks we post, and /api/v1, `cellect-monitor sites` and
`cellect-monitor alerts list` show the sites, the schedule, the raw deliveries and the
ImplementationFailed alert the failure fired."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.cellect.timestamps import format_timestamp, parse_timestamp
from tests.support.product import Product, free_port
from tests.support.running import clean_env, cli

pytestmark = pytest.mark.anyio
SECRET = "e2e-reads-webhook-secret-01"
TOKEN = "e2e-reads-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


async def _eventually(probe: Any, what: str, within: float = 60.0) -> Any:
    """Poll `probe` (bounded in real time) until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {within} s")


async def test_webhooks_posted_to_the_product_read_back_through_the_api_and_the_cli(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path}/monitor.db"
    env = {"CELLECT_DATABASE_URL": database, "CELLECT_WEBHOOK_SECRET": SECRET,
           "CELLECT_ADMIN_TOKEN": TOKEN}  # fmt: skip
    emulator_port = free_port()
    monitor = Product(tmp_path, "--emulator", "--sites", "2", "--no-demo-trader", "--speed", "1",
                      "--emulator-port", str(emulator_port), **env)  # fmt: skip
    await monitor.start()
    try:
        async with httpx.AsyncClient(base_url=monitor.url, timeout=10) as http:

            async def two_sites() -> list[Any]:
                answer = await http.get("/api/v1/sites", headers=ADMIN)
                items: list[Any] = answer.json()["items"]
                return items if len(items) == 2 else []

            sites = await _eventually(two_sites, "the portfolio poll")
            assert (await http.get("/api/v1/sites")).status_code == 401
            clock = await http.get(f"http://127.0.0.1:{emulator_port}/_emulator/clock")
            now = parse_timestamp(clock.json()["now"])
            assert now is not None
            start = now + timedelta(hours=1)
            slot = {"start": format_timestamp(start),
                    "end": format_timestamp(start + timedelta(minutes=15))}  # fmt: skip
            hook = {"Authorization": f"Bearer {SECRET}"}
            for status in (1, 3):
                body = {"siteId": 1, "schedule": [{**slot, "status": status}]}
                posted = await http.post("/webhooks/time-series", json=body, headers=hook)
                assert posted.status_code == 200, posted.text

            deliveries = (await http.get("/api/v1/deliveries?site=1", headers=ADMIN)).json()
            newest = deliveries["items"][0]
            one = (await http.get(f"/api/v1/deliveries/{newest['id']}", headers=ADMIN)).json()
            assert json.loads(one["body"])["schedule"][0]["status"] == 3
            window = {"from": slot["start"], "to": slot["end"]}
            schedule = await http.get("/api/v1/sites/1/schedule", params=window, headers=ADMIN)
            [entry] = schedule.json()["items"]
            assert (entry["status_name"], [h["status"] for h in entry["history"]]) == (
                "ImplementationFailed", [1, 3],
            )  # fmt: skip
            exported = await http.get(
                "/api/v1/sites/1/schedule", params={**window, "format": "csv"}, headers=ADMIN
            )
            assert [r["status"] for r in csv.DictReader(io.StringIO(exported.text))] == ["3"]

        cli_env = clean_env(CELLECT_DATABASE_URL=database)

        async def failure_alert() -> list[Any]:
            listed = cli("alerts", "list", "--format", "json", env=cli_env, cwd=tmp_path)
            assert listed.returncode == 0, listed.stderr
            alerts: list[Any] = json.loads(listed.stdout)
            return [a for a in alerts if a["rule"] == "ImplementationFailed"]

        [fired] = await _eventually(failure_alert, "the ImplementationFailed alert")
        assert fired["labels"]["site_id"] == "1"
        table = cli("alerts", "list", env=cli_env, cwd=tmp_path)
        assert table.stdout.splitlines()[0].split()[:4] == ["ID", "RULE", "SEVERITY", "STATE"]
        assert "ImplementationFailed" in table.stdout

        listed = cli("sites", env=cli_env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].startswith("SITE")
        assert [line.split()[0] for line in lines[1:]] == [str(s["site_id"]) for s in sites]
        exported = cli("sites", "--format", "csv", env=cli_env, cwd=tmp_path)
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        assert [r["site_id"] for r in rows] == ["1", "2"]
        assert all(r["soc_pct"] for r in rows)
        assert TOKEN not in monitor.output()
    finally:
        monitor.terminate()
