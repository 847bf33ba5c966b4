"""The webhook writer: the receiver's durable commits, done in a process of their own.

The monitor is one Python process, and its event loop (HTTP, validation, the fleet
picture, alerting) and the writer (digests, the status rules, the SQLite or PostgreSQL
statements) would otherwise share one interpreter lock: under a burst of
webhooks the writer's Python work cost the event loop about as much as the HTTP
handling itself. `WriterProcess` starts `python -m receiver.ingest.writer` and hands it
each group-commit batch over a socket pair; the child stores the batch with
`store_webhook_batch` (one transaction, committed before it answers) and sends back
one `BatchOutcome` per delivery. The monitor acknowledges a delivery only after that
answer, so "2xx means committed" holds exactly as with an in-process writer. Batches
are pipelined: the monitor may send the next batch before the last one's answer has
arrived; the child takes them in order, answers in order, and never waits for the
event loop between two commits.

Only validated deliveries are sent (raw body, receive time, peer address); the child
parses them again, which is deterministic and cheaper for the event loop than pickling
parsed objects. Messages are length-prefixed pickles: both ends are this module, on a
socket pair no other process holds. The database URL (it may carry a password) is sent
over the socket, never on the command line.

The child exits when the socket closes, so it never outlives the monitor, also when the
monitor is killed with SIGKILL; it ignores SIGINT and SIGTERM (sent to the whole process
group by Ctrl-C or a service manager) so that the monitor's graceful shutdown still has
a writer for the requests in flight. If the child dies, the batches in flight fail
(their requests get 503 and the sender retries; a delivery that was committed after all
is then acknowledged as a duplicate) and the next batch starts a new child.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, event
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session

from receiver.cellect.webhook import PayloadError, parse_status_webhook
from receiver.storage.deliveries import BatchOutcome, IncomingDelivery, store_webhook_batch

log = logging.getLogger(__name__)

Wire = tuple[str, datetime, str | None]  # body, received_at, remote_addr
Batch = tuple[list[Wire], frozenset[str]]  # the deliveries, and the digests in doubt
START_TIMEOUT_S = 60.0
_LENGTH = struct.Struct("!Q")  # each message: its length, then its pickle


class WriterUnavailable(RuntimeError):
    """The writer process is not running (it failed to start, or died mid-batch)."""


class DeliveryRefused(ValueError):
    """The database refused this one delivery's values (stored alone, it still fails)."""


@dataclass(frozen=True)
class WriterFailure:
    """The child's answer when a batch (or one delivery) could not be stored: nothing of
    it was committed. `refused`: the database refused the values, not an outage."""

    error: str
    refused: bool = False

    def exception(self) -> Exception:
        if self.refused:
            return DeliveryRefused(self.error)
        return WriterUnavailable(f"the webhook writer could not store it: {self.error}")


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _send(sock: socket.socket, message: object) -> None:
    sock.sendall(_frame(message))


def _recv(sock: socket.socket) -> Any:
    """The next message; EOFError when the other side has closed the socket."""
    (length,) = _LENGTH.unpack(_recv_exactly(sock, _LENGTH.size))
    return pickle.loads(_recv_exactly(sock, length))  # noqa: S301 - our own child, a socketpair


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n
    return bytes(buffer)


@dataclass
class _Child:
    """One writer process and the monitor's end of its socket."""

    process: subprocess.Popen[bytes]
    stream: asyncio.StreamWriter
    # Batches sent and not answered yet, oldest first, with when they were sent.
    pending: deque[tuple[asyncio.Future[Any], float]] = field(default_factory=deque)
    reader: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.process.poll() is None and not self.stream.is_closing()


class WriterProcess:
    """The monitor's side: start the child, send it batches, stop it (one event loop)."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._child: _Child | None = None
        self._starting = asyncio.Lock()  # one restart at a time
        self.restarts = 0
        self.exit_codes: list[int] = []  # of the children that have ended, oldest first

    @property
    def pid(self) -> int | None:
        return self._child.process.pid if self._child is not None else None

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.usable

    def busy_for(self) -> float:
        """Seconds the oldest unanswered batch has waited (0 when none waits)."""
        child = self._child
        if child is None or not child.pending:
            return 0.0
        return time.monotonic() - child.pending[0][1]

    def kill(self) -> None:
        """Kill a stalled child: its batches in flight fail, the next batch starts anew."""
        child = self._child
        if child is not None and child.process.poll() is None:
            log.error("the webhook writer has not answered for %.0f s; killing it", self.busy_for())
            child.process.kill()

    async def start(self) -> None:
        """Start the child and wait until it has connected to the database."""
        process, sock = await anyio.to_thread.run_sync(self._spawn)
        reader, stream = await asyncio.open_connection(sock=sock)
        child = _Child(process, stream)
        child.reader = asyncio.create_task(self._read_answers(child, reader))
        self._child = child

    def _spawn(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        ours, theirs = socket.socketpair()
        try:
            command = [sys.executable, "-m", "receiver.ingest.writer"]
            command += ["--fd", str(theirs.fileno()), "--parent-pid", str(os.getpid())]
            # Our own interpreter and module; the arguments are numbers.
            process = subprocess.Popen(command, pass_fds=(theirs.fileno(),))  # noqa: S603
        finally:
            theirs.close()
        try:
            ours.settimeout(START_TIMEOUT_S)
            _send(ours, self._database_url)
            answer = _recv(ours)
        except (EOFError, OSError) as exc:
            answer = WriterFailure(f"no answer ({type(exc).__name__})")
        if isinstance(answer, WriterFailure):
            ours.close()
            _reap(process)
            raise WriterUnavailable(f"the webhook writer could not start: {answer.error}")
        ours.settimeout(None)
        return process, ours

    async def commit(
        self, deliveries: list[IncomingDelivery], in_doubt: frozenset[str] = frozenset()
    ) -> list[BatchOutcome | Exception]:
        """Store `deliveries` in the child (one transaction, unless one delivery fails:
        then each alone); per delivery its outcome or why it was not stored."""
        child = self._child
        if child is None or not child.usable:
            child = await self._restart()
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        child.pending.append((answer, time.monotonic()))
        wire = [(d.body, d.received_at, d.remote_addr) for d in deliveries]
        child.stream.write(_frame((wire, in_doubt)))
        result = await answer
        if isinstance(result, WriterFailure):
            raise result.exception()
        return [r.exception() if isinstance(r, WriterFailure) else r for r in result]

    async def _restart(self) -> _Child:
        async with self._starting:
            old = self._child
            if old is not None and old.usable:  # another batch restarted it meanwhile
                return old
            log.warning("the webhook writer process is not running; starting a new one")
            if old is not None:
                await self._stop(old)
            self.restarts += 1
            await self.start()
            assert self._child is not None
            return self._child

    async def _read_answers(self, child: _Child, reader: asyncio.StreamReader) -> None:
        """Hand each answer to the oldest waiting batch (the child answers in order)."""
        error: Exception = WriterUnavailable("the webhook writer stopped")
        try:
            while True:
                (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                message = pickle.loads(await reader.readexactly(length))  # noqa: S301
                waiting, _ = child.pending.popleft()
                if not waiting.done():
                    waiting.set_result(message)
        except (asyncio.IncompleteReadError, OSError) as exc:
            error = WriterUnavailable("the webhook writer died mid-batch")
            error.__cause__ = exc
        except Exception as exc:  # an answer that does not unpickle: drop this child
            log.exception("unreadable answer from the webhook writer")
            error = WriterUnavailable("the webhook writer sent an unreadable answer")
            error.__cause__ = exc
        finally:
            child.stream.close()  # not usable any more: the next batch starts a new child
            while child.pending:
                waiting, _ = child.pending.popleft()
                if not waiting.done():
                    waiting.set_exception(error)

    async def close(self) -> None:
        """Close the socket (the child ends its batch in flight, then exits) and wait."""
        child, self._child = self._child, None
        if child is not None:
            await self._stop(child)

    async def _stop(self, child: _Child) -> None:
        child.stream.close()
        if child.reader is not None:
            child.reader.cancel()
            await asyncio.gather(child.reader, return_exceptions=True)
        await anyio.to_thread.run_sync(_reap, child.process)
        self.exit_codes.append(child.process.returncode)


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for the child to leave (it does once its socket is closed); kill it if not."""
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The child.


def _serve(sock: socket.socket) -> None:
    from receiver.storage.engine import create_engine_for, session_factory

    try:
        engine = create_engine_for(_recv(sock))
        checkpointer = Checkpointer.for_engine(engine)
        with engine.connect():
            pass  # reachable, or the monitor learns now why not
    except Exception as exc:
        _send(sock, WriterFailure(f"{type(exc).__name__}: {exc}"))
        return
    _send(sock, "ready")
    sessions = session_factory(engine)
    if checkpointer is not None:
        checkpointer.start()
    while True:
        try:
            wire, in_doubt = _recv(sock)
        except (EOFError, OSError):  # the monitor closed the socket, or died
            break
        try:
            answer = _store_wire(sessions, wire, in_doubt)
        except Exception as exc:
            log.exception("storing a webhook batch failed")
            answer = _failure(exc)
        try:
            _send(sock, answer)
        except OSError:
            break
    if checkpointer is not None:
        checkpointer.stop()
    engine.dispose()


Answer = list[BatchOutcome | WriterFailure] | WriterFailure


def _store_wire(
    sessions: Callable[[], Session], wire: list[Wire], in_doubt: frozenset[str]
) -> Answer:
    """Parse (the monitor validated each body; one that does not parse here is refused
    alone) and store the batch."""
    parsed: list[IncomingDelivery | WriterFailure] = []
    for body, at, addr in wire:
        try:
            parsed.append(IncomingDelivery(body, parse_status_webhook(json.loads(body)), at, addr))
        except (ValueError, PayloadError) as exc:
            parsed.append(WriterFailure(f"unparsable delivery: {type(exc).__name__}", True))
    good = [p for p in parsed if isinstance(p, IncomingDelivery)]
    stored = iter(_store(sessions, good, in_doubt) if good else [])
    return [p if isinstance(p, WriterFailure) else next(stored) for p in parsed]


def _store(
    sessions: Callable[[], Session], deliveries: list[IncomingDelivery], in_doubt: frozenset[str]
) -> list[BatchOutcome | WriterFailure]:
    """The batch in one transaction; if it fails, each delivery in a transaction of its
    own, so that one delivery the database refuses never fails its neighbours."""
    try:
        with sessions() as session:
            return list(
                store_webhook_batch(session=session, deliveries=deliveries, in_doubt=in_doubt)
            )
    except Exception as exc:
        if len(deliveries) == 1:
            log.exception("storing a webhook delivery failed")
            return [_failure(exc)]
        log.warning(
            "a batch of %d deliveries failed (%s); storing each alone",
            len(deliveries),
            type(exc).__name__,
        )
    answers: list[BatchOutcome | WriterFailure] = []
    for delivery in deliveries:
        try:
            with sessions() as session:
                answers += store_webhook_batch(
                    session=session, deliveries=[delivery], in_doubt=in_doubt
                )
        except Exception as exc:
            log.exception("storing a webhook delivery failed")
            answers.append(_failure(exc))
    return answers


def _failure(exc: Exception) -> WriterFailure:
    # The values of the delivery itself (out of a column's range, a constraint): the same
    # delivery would fail every time, so it is refused rather than retried forever.
    refused = isinstance(exc, DataError | IntegrityError)
    return WriterFailure(f"{type(exc).__name__}: {_first_line(exc)}", refused)


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


class Checkpointer(threading.Thread):
    """SQLite only: copies the write-ahead log into the database file beside the writer.

    SQLite checkpoints inside the commit that crosses `wal_autocheckpoint` pages, and
    that commit (with every delivery of its batch) then waits for the copy and a second
    fsync. The writer's connections turn that off; this thread runs a PASSIVE checkpoint
    (it never blocks the writer, and readers never block it) every `every_s` seconds on
    a connection of its own, and once more when the writer stops. Durability is the
    WAL's either way: a commit is on disk once its WAL frames are.
    """

    def __init__(self, engine: Engine, every_s: float = 1.0) -> None:
        super().__init__(name="wal-checkpointer", daemon=True)
        self.engine, self.every_s = engine, every_s
        self._stopping = threading.Event()

    @classmethod
    def for_engine(cls, engine: Engine) -> Checkpointer | None:
        if engine.dialect.name != "sqlite":
            return None

        @event.listens_for(engine, "connect")
        def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        return cls(engine)

    def run(self) -> None:
        while not self._stopping.wait(self.every_s):
            self.checkpoint()
        self.checkpoint()

    def checkpoint(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:  # the next round tries again; the WAL only grows meanwhile
            log.exception("checkpointing the SQLite write-ahead log failed")

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="cellect-monitor's webhook writer process")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the monitor")
    parser.add_argument("--parent-pid", type=int, help="the monitor's pid (for ps)")
    args = parser.parse_args(argv)
    # Ctrl-C or a service manager's SIGTERM reach the whole process group: the writer
    # finishes the batch in flight and leaves when the monitor closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _serve(socket.socket(fileno=args.fd))


if __name__ == "__main__":
    # Through the importable module, not this `__main__` copy: what the child pickles
    # (WriterFailure) must unpickle in the monitor as receiver.ingest.writer's class.
    from receiver.ingest.writer import main as writer_main

    writer_main()
