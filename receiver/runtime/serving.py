"""Serve an ASGI app with uvicorn on a socket we bind ourselves: the monitor and the
emulator alike (nothing here imports either).

Binding first means port 0 picks a free port and the real URL is known before the
server starts; `ready()` is called once it accepts connections (after the app's lifespan
started, when it has one), and a background coroutine may run `beside` the server until
it exits (the emulator's clock, boxes and webhooks).

uvicorn's own proxy-header handling is off: by default it believes X-Forwarded-For from
127.0.0.1 (or whatever its FORWARDED_ALLOW_IPS variable names), which would let any local
process choose its client address. The app applies it itself, from
CELLECT_FORWARDED_ALLOW_IPS only (receiver.web.proxies).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Literal, TypeVar

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_S = 30.0
# Full collections after this many of the middle generation (Python's default: 10).
FULL_COLLECTION_AFTER = 100
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
GIL_SWITCH_S = 0.0005
# Benchmarks only (bench/stack.py): "asyncio" serves on asyncio's loop with h11, the
# stock uvicorn stack, instead of uvloop and httptools. Not a setting users need.
STACK_VARIABLE = "CELLECT_SERVER_STACK"


def _plain_stack() -> bool:
    return os.environ.get(STACK_VARIABLE) == "asyncio"


T = TypeVar("T")
Lifespan = Literal["on", "off", "auto"]
log = logging.getLogger(__name__)


def run_server(main: Coroutine[Any, Any, T]) -> T:
    """Run a server's main coroutine on uvloop (uvicorn[standard]'s event loop: its
    transports parse and write in C), or on asyncio where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(main)
    if _plain_stack():
        return asyncio.run(main)
    return uvloop.run(main)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: a free one), not yet listening.

    Created with IPPROTO_TCP on purpose: asyncio sets TCP_NODELAY on the connections a
    server accepts only when its listening socket says it is TCP. Without it every
    response waited for Nagle's algorithm and the client's delayed ACK (~40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def settle_heap() -> None:
    """Move what start-up made (modules, classes, the app, the restored fleet: ~150,000
    objects, nearly all alive for good) out of the garbage collector's sight.

    A full collection walks every tracked object; under load it ran every second or so
    and stopped the event loop for 60-90 ms each time, the monitor's worst latencies
    (docs/performance.md). Frozen objects are never walked again, and never freed: the
    price is whatever of them becomes garbage later, which for start-up state is ~nil.

    Then full collections wait for 100 collections of the middle generation instead of
    Python's 10. Polling 10,000 sites, what a round keeps (the fleet's picture, parsed
    answers) made one every ~4 s, each stopping the loop 15-50 ms, about one slow /healthz
    each; now one every ~20 s or more. Reference counting frees nearly all garbage as it
    is made; only reference cycles wait longer, and the peak RSS stayed the same.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)


def share_the_gil() -> None:
    """Let the event loop's thread take the GIL back from a worker thread within 0.5 ms,
    not Python's default 5 ms.

    The monitor judges the fleet, renders the sites' gauges and stores poll results in
    worker threads; while one runs, every step of a request on the loop (read, handler,
    write) waited up to a switch interval for the GIL, which made most of /healthz's slow
    answers while polling 10,000 sites (docs/performance.md). The price is the worker
    threads' own pace while they compete with the loop: in one bench run the ExAnte and
    ExPost rounds took 18 s instead of 7-8 s, still well within their 120 s interval.
    """
    sys.setswitchinterval(GIL_SWITCH_S)


def url_of(sock: socket.socket, host: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}"


class Server(uvicorn.Server):
    """uvicorn's Server with an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()  # also when it failed: `started` tells which

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, without raising the signal again once the server has shut down: a
        SIGTERM or Ctrl-C that stopped it cleanly ends the command with status 0."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def server_config(
    app: ASGIApp, *, access_log: bool = True, lifespan: Lifespan = "on"
) -> uvicorn.Config:
    """uvicorn's configuration for our servers (our logging, no proxy headers of its own)."""
    return uvicorn.Config(
        app,
        lifespan=lifespan,
        access_log=access_log,
        log_config=None,
        proxy_headers=False,
        http="h11" if _plain_stack() else "auto",
    )


async def serve_app(
    app: ASGIApp,
    sock: socket.socket,
    *,
    ready: Callable[[], None] | None = None,
    access_log: bool = True,
    lifespan: Lifespan = "on",
    beside: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Serve `app` on the bound `sock` until uvicorn exits (SIGINT/SIGTERM, or its
    `should_exit`); `beside(stop)` runs meanwhile, and `stop` is set when the server ends."""
    server = Server(server_config(app, access_log=access_log, lifespan=lifespan))
    stop = asyncio.Event()

    async def announce() -> None:
        try:
            await asyncio.wait_for(server.listening.wait(), timeout=STARTUP_TIMEOUT_S)
        except TimeoutError:
            log.error("the server did not start listening within %.0f s", STARTUP_TIMEOUT_S)
            return
        if server.started:
            settle_heap()
            share_the_gil()
            if ready is not None:
                ready()

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            stop.set()
            server.listening.set()  # never leave announce() waiting

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(run())
            group.create_task(announce())
            if beside is not None:
                group.create_task(beside(stop))
    finally:
        sock.close()
