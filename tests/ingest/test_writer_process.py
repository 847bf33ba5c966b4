"""The webhook writer process: batches stored in order, restarts, failures, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.webhook import ParsedWebhook, parse_status_webhook
from receiver.ingest.framing import DeliveryRefused, WriterUnavailable
from receiver.ingest.writer import WriterProcess
from receiver.storage.deliveries import BatchOutcome, IncomingDelivery
from receiver.storage.engine import create_engine_for, upgrade
from receiver.storage.tables import WebhookDelivery
from tests.support.stack import until

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)


def delivery(site_id: int, slot: int, status: int = 2) -> IncomingDelivery:
    start = T0 + SLOT * slot
    entry = {"start": start.isoformat(), "end": (start + SLOT).isoformat(), "status": status}
    body = json.dumps({"siteId": site_id, "schedule": [entry]})
    return IncomingDelivery(body, parse_status_webhook(json.loads(body)), T0, "127.0.0.1")


def stored(database_url: str) -> int:
    engine = create_engine_for(database_url)
    try:
        with Session(engine) as session:
            count: int = session.exec(select(func.count()).select_from(WebhookDelivery)).one()
            return count
    finally:
        engine.dispose()


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[WriterProcess]:
    upgrade(database_url)
    process = WriterProcess(database_url)
    await process.start()
    try:
        yield process
    finally:
        await process.close()


async def test_a_batch_is_stored_and_its_outcomes_come_back(
    writer: WriterProcess, database_url: str
) -> None:
    """Outcomes per delivery, in order: ids, a duplicate inside the batch, the changes."""
    first, second = delivery(1, 0, status=3), delivery(2, 0)
    outcomes = await writer.commit([first, second, first])
    assert [o.duplicate for o in outcomes] == [False, False, True]
    assert None not in (outcomes[0].delivery_id, outcomes[1].delivery_id)
    assert [c.status for c in outcomes[0].changes] == [ImplementationStatus.IMPLEMENTATION_FAILED]
    assert stored(database_url) == 2


async def test_pipelined_batches_are_answered_each_with_its_own_outcomes(
    writer: WriterProcess, database_url: str
) -> None:
    """Batches sent before earlier ones are answered get their own answers, in order."""
    batches = [[delivery(site, slot) for slot in range(5)] for site in range(1, 9)]
    results = await asyncio.gather(*(writer.commit(batch) for batch in batches))
    for batch, outcomes in zip(batches, results, strict=True):
        assert [c.site_id for o in outcomes for c in o.changes] == [
            d.webhook.site_id for d in batch
        ]
    assert stored(database_url) == 40


async def test_a_dead_writer_is_replaced_by_the_next_batch(
    writer: WriterProcess, database_url: str
) -> None:
    """SIGKILL the child while idle: the next batch starts a new one and is stored."""
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    await until(lambda: not writer.alive, what="the writer to die")
    (outcome,) = await writer.commit([delivery(3, 1)])
    assert not outcome.duplicate
    assert writer.restarts == 1
    assert writer.exit_codes == [-signal.SIGKILL]
    assert stored(database_url) == 1


async def test_a_writer_killed_mid_batch_fails_that_batch_only(
    writer: WriterProcess, database_url: str
) -> None:
    """The batch in flight when the child dies fails (its requests get 503 and are sent
    again); a redelivery is stored once, acknowledged as new or as a duplicate."""
    pid = writer.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # hold it, so the batch is surely in flight
    pending = asyncio.ensure_future(writer.commit([delivery(4, 1)]))
    await asyncio.sleep(0.2)
    assert not pending.done()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WriterUnavailable, match="died mid-batch"):
        await pending
    (again,) = await writer.commit([delivery(4, 1)])
    assert again.delivery_id is not None or again.duplicate
    assert stored(database_url) == 1


async def test_a_delivery_the_child_cannot_store_fails_alone(
    writer: WriterProcess, database_url: str
) -> None:
    """A delivery the child cannot store (here: a body it cannot parse) is refused alone:
    its neighbour in the batch is stored, and the same child goes on."""
    good = delivery(5, 1)
    broken = IncomingDelivery("{not json", good.webhook, T0, None)
    answers = await writer.commit([good, broken])
    assert isinstance(answers[0], BatchOutcome)
    assert isinstance(answers[1], DeliveryRefused)
    assert stored(database_url) == 1
    pid = writer.pid
    await writer.commit([delivery(5, 2)])
    assert (writer.pid, writer.restarts, stored(database_url)) == (pid, 0, 2)


@pytest.mark.postgres
async def test_a_site_id_beyond_the_column_fails_alone_on_postgresql(postgres_url: str) -> None:
    """Past the door's checks, a site id the int4 column cannot hold fails only its own
    delivery (refused, not retried forever); the deliveries batched with it are stored."""
    upgrade(postgres_url)
    process = WriterProcess(postgres_url)
    await process.start()
    try:
        good = [delivery(7, 1), delivery(8, 1)]
        poison = IncomingDelivery(
            good[0].body.replace('"siteId": 7', f'"siteId": {2**31}'),
            ParsedWebhook(2**31, good[0].webhook.schedule),
            T0,
            None,
        )
        answers = await process.commit([good[0], poison, good[1]])
        assert [type(a).__name__ for a in answers] == [
            "BatchOutcome",
            "DeliveryRefused",
            "BatchOutcome",
        ]
        assert stored(postgres_url) == 2
    finally:
        await process.close()


async def test_sigterm_to_the_process_group_leaves_the_writer_serving(
    writer: WriterProcess, database_url: str
) -> None:
    """A service manager's SIGTERM reaches the child too; it keeps storing until the
    monitor closes its socket, so the monitor's graceful shutdown has a writer."""
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGTERM)
    await writer.commit([delivery(6, 1)])
    assert (writer.restarts, writer.alive) == (0, True)


async def test_close_ends_the_child(writer: WriterProcess) -> None:
    """Closing the socket is the child's signal to finish: it exits with status 0."""
    pid = writer.pid
    assert pid is not None
    await writer.close()
    assert writer.pid is None
    assert writer.exit_codes == [0]  # a clean exit, its WAL checkpointed
    with pytest.raises(ProcessLookupError):  # exited and reaped
        os.kill(pid, 0)


async def test_a_writer_that_cannot_reach_its_database_fails_to_start_without_the_password() -> (
    None
):
    """Start-up fails with the driver's reason, never the password of the URL."""
    writer = WriterProcess("postgresql+psycopg://monitor:s3cret-pass@127.0.0.1:1/cellect")
    with pytest.raises(WriterUnavailable, match="could not start") as raised:
        await writer.start()
    assert "s3cret-pass" not in str(raised.value)
    assert not writer.alive


async def test_the_sqlite_log_is_checkpointed_beside_the_writer(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The writer's commits do not checkpoint; its Checkpointer thread does, while it
    runs: the database file alone (without its -wal file) soon holds every delivery.
    (SQLite would checkpoint by itself only past 1000 pages, or when the last
    connection closes.)"""
    upgrade(sqlite_url)
    writer = WriterProcess(sqlite_url)
    await writer.start()
    try:
        await writer.commit([delivery(site, slot) for site in range(1, 4) for slot in range(30)])
        database = Path(sqlite_url.removeprefix("sqlite:///"))

        def in_the_file_alone() -> int:
            alone = tmp_path / "copy-without-wal.db"
            shutil.copyfile(database, alone)
            try:
                with closing(sqlite3.connect(alone)) as connection:
                    query = "SELECT count(*) FROM webhook_deliveries"
                    (count,) = connection.execute(query).fetchone()
            except sqlite3.DatabaseError:
                return -1  # copied while a checkpoint was writing the file: look again
            finally:
                alone.unlink()
            return int(count)

        assert await until(lambda: in_the_file_alone() == 90, what="a checkpoint")
    finally:
        await writer.close()
