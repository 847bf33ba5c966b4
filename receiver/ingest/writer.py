"""The webhook writer: the receiver's durable commits, done in a process of their own.

The monitor is one Python process, and its event loop (HTTP, validation, the fleet
picture, alerting) and the writer (digests, the status rules, the SQLite or PostgreSQL
statements) would otherwise share one interpreter lock: under a burst of
webhooks the writer's Python work cost the event loop about as much as the HTTP
handling itself. `WriterProcess` starts `python -m receiver.ingest.writer_child` and hands it
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

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from receiver.ingest.framing import (
    LENGTH,
    WriterFailure,
    WriterUnavailable,
    frame,
    recv,
    send,
    unpickle,
)
from receiver.storage.deliveries import BatchOutcome, IncomingDelivery

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0


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
        # One of several replicas: its id, for the fleet feed rows each batch writes
        # (set before `start`); None: the only monitor, nothing to tell.
        self.replica: str | None = None
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
            command = [sys.executable, "-m", "receiver.ingest.writer_child"]
            command += ["--fd", str(theirs.fileno()), "--parent-pid", str(os.getpid())]
            # Our own interpreter and module; the arguments are numbers.
            process = subprocess.Popen(command, pass_fds=(theirs.fileno(),))  # noqa: S603
        finally:
            theirs.close()
        try:
            ours.settimeout(START_TIMEOUT_S)
            send(ours, (self._database_url, self.replica))
            answer = recv(ours)
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
        child.stream.write(frame((wire, in_doubt)))
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
                (length,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
                message = unpickle(await reader.readexactly(length))
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
