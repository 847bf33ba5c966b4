"""A real HTTP sink on loopback for tests: records every request, fails or goes down on demand.

    with HttpSink() as sink:            # uvicorn on 127.0.0.1:<free port>, background thread
        sink.url("/hook?token=x")       # an absolute URL on the sink
        sink.fail_with(500)             # answer 500 from now on ... sink.fail_with(None) recovers
        sink.stop(); sink.start()       # down (connection refused) and back up, same port
        sink.requests                   # list[RecordedRequest], in arrival order

Any method and path is accepted and answered with `status` (default 200, JSON body
`{"ok": true}`). `wait_for(n)` (threads) and `await until(n)` (inside an event loop) poll, bounded
in real time, for requests that a background task sends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the sink received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int
    client: str = ""  # the peer's "host:port": one per connection

    def json(self) -> Any:
        return json.loads(self.body)


class HttpSink:
    """A Starlette app under uvicorn in a thread, recording requests; a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = _free_port(host)
        self.requests: list[RecordedRequest] = []
        self.status = 200
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])]
        )

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def fail_with(self, status: int | None) -> None:
        """Answer `status` to every request from now on; None recovers (200)."""
        self.status = 200 if status is None else status

    async def _handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        status = self.status
        record = RecordedRequest(
            request.method,
            request.url.path,
            request.url.query,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            status,
            f"{request.client.host}:{request.client.port}" if request.client else "",
        )
        with self._lock:
            self.requests.append(record)
        return JSONResponse({"ok": 200 <= status < 300}, status_code=status)

    @property
    def accepted(self) -> list[RecordedRequest]:
        """The requests that were answered 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def start(self) -> None:
        """Serve on the sink's port (again, after stop())."""
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY when proto says TCP (else +40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", ws="none", access_log=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the HTTP sink did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread
        self._sock = sock

    def stop(self) -> None:
        """Shut the server down: connections to the port are refused until start()."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        self._server = self._thread = None

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The requests once at least `count` arrived (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")

    async def until(self, count: int, within_s: float = 5.0) -> list[RecordedRequest]:
        """Like wait_for, without blocking the event loop (for senders running in it)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")

    def __enter__(self) -> HttpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
