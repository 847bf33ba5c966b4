"""The webhook writer process stalled or lost mid-batch: requests answer 503 in bounded
time, readiness and metrics say so, the writer is replaced, and a delivery it committed
without answering is learned when Cellect sends it again."""

from __future__ import annotations

import json
import os
import signal
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session

from receiver.cellect.timestamps import format_timestamp
from receiver.cellect.webhook import parse_status_webhook
from receiver.storage.deliveries import IncomingDelivery, store_webhook_batch
from receiver.web.app import WEBHOOK_PATH
from tests.support.stack import WEBHOOK_SECRET, Stack, monitor_stack, until

pytestmark = pytest.mark.anyio


def _body(stack: Stack, site_id: int, status: int, minutes: int = 20) -> str:
    start = stack.clock.now() + timedelta(minutes=minutes)
    entry = {
        "start": format_timestamp(start),
        "end": format_timestamp(start + timedelta(minutes=15)),
        "status": status,
    }
    return json.dumps({"siteId": site_id, "schedule": [entry]})


async def _post(stack: Stack, body: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        return await http.post(
            f"{WEBHOOK_PATH}?token={WEBHOOK_SECRET}",
            content=body,
            headers={"content-type": "application/json"},
        )


async def _post_until_stored(stack: Stack, body: str) -> httpx.Response:
    """Post as Cellect does, retrying 503s (a new writer takes its start-up time)."""
    for _ in range(50):
        response = await _post(stack, body)
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            return response
    raise AssertionError("no writer stored the delivery")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_stalled_writer_is_reported_and_replaced(database_url: str) -> None:
    """SIGSTOP the writer: a delivery answers 503 (timeout, Retry-After) within the commit
    timeout, /readyz is 503 and cellect_webhook_writer_up 0; the monitor kills the stalled
    writer and the next delivery is stored by a new one."""
    async with monitor_stack(database_url, webhook_commit_timeout_s=0.5) as stack:
        monitor = stack.monitor
        assert (await _post(stack, _body(stack, 1, 1))).status_code == 200
        pid = monitor.writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            stalled = await _post(stack, _body(stack, 1, 1, minutes=40))
            assert stalled.status_code == 503
            assert stalled.json()["error"] == "timeout"
            assert stalled.headers["retry-after"] == "5"
            async with httpx.AsyncClient(base_url=stack.url) as http:
                ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()["webhook_writer"]) == (503, False)
            assert stack.sample("cellect_webhook_writer_up") == 0
            await until(lambda: not _alive(pid), within=15, what="the stalled writer killed")
        finally:
            if _alive(pid):
                os.kill(pid, signal.SIGCONT)
        await _post_until_stored(stack, _body(stack, 1, 1, minutes=60))
        assert monitor.writer.pid != pid
        assert stack.sample("cellect_webhook_writer_restarts_total") == 1
        assert stack.sample("cellect_webhook_writer_up") == 1


async def test_a_delivery_committed_but_unanswered_is_learned_when_sent_again(
    database_url: str,
) -> None:
    """The writer commits a failure and dies before answering (503 to Cellect): when
    Cellect sends it again it is a duplicate, and its failure is counted and alerted
    just as the first delivery's would have been."""
    async with monitor_stack(database_url, webhook_commit_timeout_s=0.5) as stack:
        monitor = stack.monitor
        body = _body(stack, 2, 3, minutes=-5)
        pid = monitor.writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the batch reaches the writer, which stands still
        assert (await _post(stack, body)).status_code == 503
        # What the writer did before it died: commit the batch (the same function).
        delivery = IncomingDelivery(body, parse_status_webhook(json.loads(body)), stack.clock.now())
        with Session(monitor.database) as session:
            [stored] = store_webhook_batch(session=session, deliveries=[delivery])
        assert not stored.duplicate
        os.kill(pid, signal.SIGKILL)
        await until(lambda: not monitor.writer.alive, what="the writer gone")
        failures = "cellect_schedule_implementation_failures_total"
        assert (stack.sample(failures, site_id="2") or 0) == 0
        again = await _post_until_stored(stack, body)
        assert again.json()["duplicate"] is True
        assert stack.sample(failures, site_id="2") == 1
        [site] = [s for s in monitor.fleet.view().sites if s.site_id == 2]
        assert site.failure_run is not None
