"""The webhook writer: the receiver's durable commits, done in a process of their own.

The monitor is one Python process, and its event loop (HTTP, validation, the fleet
picture, alerting) and the writer (digests, forward-only status rules, the SQLite or
PostgreSQL statements) would otherwise share one interpreter lock: under a burst of
webhooks the writer's Python work cost the event loop about as much as the HTTP
handling itself. `WriterProcess` starts `python -m receiver.webhook_writer` and hands it
each group-commit batch over a socket pair; the child stores the batch with
`store_webhook_batch` (one transaction, committed before it answers) and sends back
one `BatchOutcome` per delivery. The monitor acknowledges a delivery only after that
answer, so "2xx means committed" holds exactly as with an in-process writer.

Only validated deliveries are sent (raw body, receive time, peer address); the child
parses them again, which is deterministic, rather than receiving pickled objects. The
database URL (it may carry a password) is sent over the socket, never on the command
line. The child exits when the socket closes, so it never outlives the monitor, also
when the monitor is killed with SIGKILL; it ignores SIGINT and SIGTERM (sent to the
whole process group by Ctrl-C or a service manager) so that the monitor's graceful
shutdown still has a writer for the requests in flight. If the child dies, the batch in flight fails
(its requests get 503 and the sender retries; a delivery that was committed after all
is then acknowledged as a duplicate) and the next batch starts a new child.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection

from receiver.storage.webhooks import BatchOutcome, IncomingDelivery, store_webhook_batch

log = logging.getLogger(__name__)

Wire = tuple[str, datetime, str | None]  # body, received_at, remote_addr
START_TIMEOUT_S = 60.0


class WriterUnavailable(RuntimeError):
    """The writer process is not running (it failed to start, or died mid-batch)."""


@dataclass(frozen=True)
class WriterFailure:
    """The child's answer when a batch could not be stored (nothing of it was committed)."""

    error: str


class WriterProcess:
    """The parent's side: start the child, send it batches, stop it."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the child and wait until it has connected to the database (blocking)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            command = [sys.executable, "-m", "receiver.webhook_writer"]
            command += ["--fd", str(theirs.fileno()), "--parent-pid", str(os.getpid())]
            # Our own interpreter and module; the arguments are numbers.
            self._process = subprocess.Popen(command, pass_fds=(theirs.fileno(),))  # noqa: S603
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(self._database_url)
        if not self._conn.poll(START_TIMEOUT_S):
            self._stop()
            raise WriterUnavailable(f"the webhook writer did not start within {START_TIMEOUT_S} s")
        try:
            answer = self._conn.recv()
        except EOFError:
            answer = WriterFailure("the webhook writer exited at start")
        if isinstance(answer, WriterFailure):
            self._stop()
            raise WriterUnavailable(f"the webhook writer could not start: {answer.error}")

    def commit(self, deliveries: list[IncomingDelivery]) -> list[BatchOutcome]:
        """Store `deliveries` in one transaction in the child; their outcomes (blocking)."""
        wire: list[Wire] = [(d.body, d.received_at, d.remote_addr) for d in deliveries]
        with self._lock:
            if not self.alive:
                self._stop()
                self.restarts += 1
                log.warning("the webhook writer process is not running; starting a new one")
                self._start()
            assert self._conn is not None
            try:
                self._conn.send(wire)
                answer = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._stop()
                raise WriterUnavailable("the webhook writer died mid-batch") from exc
        if isinstance(answer, WriterFailure):
            raise WriterUnavailable(f"the webhook writer could not store a batch: {answer.error}")
        outcomes: list[BatchOutcome] = answer
        return outcomes

    def close(self) -> None:
        """Ask the child to finish and wait for it (it ends its batch in flight first)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()  # the child sees end-of-file and exits
        if process is not None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# The child.


def _serve(conn: Connection) -> None:
    from receiver.storage.engine import create_engine_for, session_factory
    from receiver.webhook_payload import parse_status_webhook

    try:
        engine = create_engine_for(conn.recv())
        with engine.connect():
            pass  # reachable, or the parent learns now why not
    except Exception as exc:
        conn.send(WriterFailure(f"{type(exc).__name__}: {exc}"))
        return
    conn.send("ready")
    sessions = session_factory(engine)
    while True:
        try:
            batch: list[Wire] = conn.recv()
        except EOFError:  # the monitor closed the socket, or died
            break
        try:
            deliveries = [
                IncomingDelivery(body, parse_status_webhook(json.loads(body)), at, addr)
                for body, at, addr in batch
            ]
            with sessions() as session:
                answer: list[BatchOutcome] | WriterFailure = store_webhook_batch(
                    session=session, deliveries=deliveries
                )
        except Exception as exc:
            log.exception("storing a webhook batch failed")
            answer = WriterFailure(f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except OSError:
            break
    engine.dispose()


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
    _serve(Connection(args.fd))


if __name__ == "__main__":
    main()
