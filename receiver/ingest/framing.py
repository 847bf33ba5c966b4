"""The messages between the monitor and its webhook writer process, and their framing.

Each message is its length (8 bytes, network order), then its pickle: both ends are
this package's code, on a socket pair no other process holds. The monitor sends the
database URL once (it may carry a password: never on a command line), then batches;
the child answers "ready" (or a `WriterFailure`), then one answer per batch, in order.
"""

from __future__ import annotations

import pickle
import socket
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Wire = tuple[str, datetime, str | None]  # body, received_at, remote_addr
Batch = tuple[list[Wire], frozenset[str]]  # the deliveries, and the digests in doubt
LENGTH = struct.Struct("!Q")  # each message: its length, then its pickle


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


def frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return LENGTH.pack(len(data)) + data


def send(sock: socket.socket, message: object) -> None:
    sock.sendall(frame(message))


def recv(sock: socket.socket) -> Any:
    """The next message; EOFError when the other side has closed the socket."""
    (length,) = LENGTH.unpack(recv_exactly(sock, LENGTH.size))
    return unpickle(recv_exactly(sock, length))


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n
    return bytes(buffer)


def unpickle(data: bytes) -> Any:
    """A message's pickle, as read off the socket by either end."""
    return pickle.loads(data)  # noqa: S301 - our own child, a socketpair
