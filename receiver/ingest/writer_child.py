"""The webhook writer process: stores the monitor's batches, one transaction each.

`python -m receiver.ingest.writer_child --fd N --parent-pid P` (started by
`receiver.ingest.writer.WriterProcess`, never by hand). It parses each delivery again
(the monitor validated it; parsing is deterministic and cheaper for the event loop than
pickling parsed objects), stores the batch with `store_webhook_batch` (one of several
replicas: with its status changes in the fleet feed, in the same transaction) and
answers one
`BatchOutcome` per delivery, or a `WriterFailure`. A batch the database refuses is
stored delivery by delivery, so that one delivery never fails its neighbours; a
delivery the database refuses alone is refused (422), not retried forever.

It exits when the socket closes, so it never outlives the monitor (also when the
monitor is killed with SIGKILL); it ignores SIGINT and SIGTERM (sent to the whole
process group by Ctrl-C or a service manager) so that the monitor's graceful shutdown
still has a writer for the requests in flight.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session

from receiver.cellect.webhook import PayloadError, parse_status_webhook
from receiver.coordination import feed
from receiver.ingest.framing import Wire, WriterFailure, recv, send
from receiver.storage.checkpoint import Checkpointer
from receiver.storage.deliveries import BatchOutcome, IncomingDelivery, store_webhook_batch
from receiver.storage.status.model import StatusChange

log = logging.getLogger(__name__)
Tell = Callable[[Session, list[StatusChange], datetime | None], None]


def _serve(sock: socket.socket) -> None:
    from receiver.storage.engine import create_engine_for, session_factory

    try:
        url, replica = recv(sock)
        engine = create_engine_for(url)
        checkpointer = Checkpointer.for_engine(engine)
        with engine.connect():
            pass  # reachable, or the monitor learns now why not
    except Exception as exc:
        send(sock, WriterFailure(f"{type(exc).__name__}: {exc}"))
        return
    send(sock, "ready")
    sessions = session_factory(engine)
    if checkpointer is not None:
        checkpointer.start()
    while True:
        try:
            wire, in_doubt = recv(sock)
        except (EOFError, OSError):  # the monitor closed the socket, or died
            break
        try:
            answer = _store_wire(sessions, wire, in_doubt, _teller(replica))
        except Exception as exc:
            log.exception("storing a webhook batch failed")
            answer = _failure(exc)
        try:
            send(sock, answer)
        except OSError:
            break
    if checkpointer is not None:
        checkpointer.stop()
    engine.dispose()


Answer = list[BatchOutcome | WriterFailure] | WriterFailure


def _teller(replica: str | None) -> Tell | None:
    """One of several replicas (`replica`: its id) tells the others the status changes
    each batch made, in the batch's own transaction (receiver.coordination.feed)."""
    if replica is None:
        return None

    def tell(session: Session, changes: list[StatusChange], received: datetime | None) -> None:
        if changes or received is not None:
            body = feed.status_body(changes, received)
            feed.publish(session=session, replica=replica, kind="status", body=body)

    return tell


def _store_wire(
    sessions: Callable[[], Session],
    wire: list[Wire],
    in_doubt: frozenset[str],
    tell: Tell | None = None,
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
    stored = iter(_store(sessions, good, in_doubt, tell) if good else [])
    return [p if isinstance(p, WriterFailure) else next(stored) for p in parsed]


def _store(
    sessions: Callable[[], Session],
    deliveries: list[IncomingDelivery],
    in_doubt: frozenset[str],
    tell: Tell | None = None,
) -> list[BatchOutcome | WriterFailure]:
    """The batch in one transaction; if it fails, each delivery in a transaction of its
    own, so that one delivery the database refuses never fails its neighbours."""
    try:
        with sessions() as session:
            return list(
                store_webhook_batch(
                    session=session, deliveries=deliveries, in_doubt=in_doubt, tell=tell
                )
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
                    session=session, deliveries=[delivery], in_doubt=in_doubt, tell=tell
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
    main()
