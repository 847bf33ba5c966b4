"""Crash safety: the receiver as a real process, killed with SIGKILL mid-burst, loses no
acknowledged delivery (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, select

from receiver.app import WEBHOOK_PATH
from receiver.cellect.models import StatusWebhook
from receiver.serving import bind
from receiver.storage.tables import ScheduleEntryRecord, WebhookDelivery
from receiver.storage.webhooks import canonical_digest
from tests.support.stack import until
from tests.webhooks.served_receiver import SECRET, stamp

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 5
BURST = 240
KILL_AFTER = (1, 20, 45, 80, 120)  # acknowledgements seen before the kill, per round


class Receiver:
    """`python -m receiver run`, webhooks only, on a fixed free port."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
        self.env = {
            **env,
            "PYTHONPATH": str(ROOT),
            "CELLECT_DATABASE_URL": database_url,
            "CELLECT_PORT": str(self.port),
            "CELLECT_WEBHOOK_SECRET": SECRET,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.killed: list[int] = []

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.workdir / "receiver.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "receiver", "run"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        self.process = self._spawn()
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=self.url) as http:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, "the receiver exited during start-up"
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the receiver did not start within 30 s")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.killed.append(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def writer_processes(monitor_pid: int) -> list[int]:
    """The pids of the webhook writer processes started by the monitor `monitor_pid`."""
    marker = b"receiver.webhook_writer\0--fd\0"
    parent = f"--parent-pid\0{monitor_pid}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if marker in cmdline and parent in cmdline:
            found.append(int(entry.name))
    return found


# The process runs on the wall clock, and its retention job prunes entries older than
# 90 days: the deliveries are about the coming hours.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _delivery(round_: int, n: int) -> bytes:
    """Distinct content per round and delivery: its own site and slots."""
    site = 1 + round_ * 1000 + n // 4
    start = BASE + timedelta(minutes=15 * (n % 4))
    schedule = [{"start": stamp(start), "end": stamp(start + timedelta(minutes=15)),
                 "status": 1 + n % 3}]  # fmt: skip
    return json.dumps({"siteId": site, "schedule": schedule}).encode()


async def _burst(receiver: Receiver, round_: int) -> list[bytes]:
    """Send BURST deliveries at once, SIGKILL the receiver mid-way; the acknowledged bodies."""
    acknowledged: list[bytes] = []
    killed = asyncio.Event()

    async def send(http: httpx.AsyncClient, content: bytes) -> None:
        try:
            response = await http.post(WEBHOOK_PATH, content=content, params={"token": SECRET})
        except httpx.TransportError:
            return
        if response.is_success:
            acknowledged.append(content)  # even if it arrives just after the kill: it was sent
            if len(acknowledged) >= KILL_AFTER[round_] and not killed.is_set():
                killed.set()
                receiver.kill()

    limits = httpx.Limits(max_connections=48)
    async with httpx.AsyncClient(base_url=receiver.url, limits=limits, timeout=20) as http:
        await asyncio.gather(*(send(http, _delivery(round_, n)) for n in range(BURST)))
    if not killed.is_set():
        receiver.kill()
    return acknowledged


def _missing(database_url: str, acknowledged: list[bytes]) -> list[Any]:
    """Acknowledged deliveries whose raw row or entries are not in the database."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as session:
            digests = set(session.exec(select(WebhookDelivery.digest)).all())
            spans = set(
                session.exec(
                    select(
                        ScheduleEntryRecord.site_id,
                        ScheduleEntryRecord.start_at,
                        ScheduleEntryRecord.end_at,
                    )
                ).all()
            )
    finally:
        engine.dispose()
    missing: list[Any] = []
    for content in acknowledged:
        webhook = StatusWebhook.model_validate_json(content)
        if canonical_digest(webhook) not in digests:
            missing.append(("delivery", content))
        for e in webhook.schedule:
            if (webhook.site_id, e.start, e.end) not in spans:
                missing.append(("entry", content))
    return missing


async def test_no_acknowledged_delivery_is_lost_to_kill_9(
    database_url: str, tmp_path: Path
) -> None:
    """Five rounds of burst + SIGKILL + restart: every 2xx'd delivery is stored and applied."""
    receiver = Receiver(database_url, tmp_path)
    try:
        await receiver.start()
        assert receiver.process is not None
        assert len(writer_processes(receiver.process.pid)) == 1  # the check below can fail
        for round_ in range(ROUNDS):
            acknowledged = await _burst(receiver, round_)
            assert len(acknowledged) >= KILL_AFTER[round_]
            # Its writer process does not outlive it (it sees its socket close).
            killed = receiver.killed[-1]
            await until(
                lambda pid=killed: not writer_processes(pid), within=30, what="the writer to exit"
            )
            await receiver.start()
            assert _missing(database_url, acknowledged) == []
            async with httpx.AsyncClient(base_url=receiver.url) as http:
                again = await http.post(
                    WEBHOOK_PATH, content=acknowledged[-1], params={"token": SECRET}
                )
            assert again.status_code == 200
            assert again.json()["duplicate"] is True
    finally:
        receiver.stop()
