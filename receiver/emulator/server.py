"""Serve an `Emulator` over HTTP with uvicorn, next to its background loop.

`serve()` binds the socket itself (so port 0 picks a free port and the real URL is
known), runs uvicorn and `emulator.run(stop)` together, calls `ready(url)` once the
server accepts connections, and stops the background loop when uvicorn exits (on
SIGINT/SIGTERM, or when the caller sets `should_exit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvicorn

from receiver.cellect.timestamps import format_timestamp
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.emulator.portfolio import MAIN_PARTNER
from receiver.runtime.serving import Server, bind, url_of

logger = logging.getLogger(__name__)

# Bounded wait for uvicorn to report that it started (real seconds).
_STARTUP_TIMEOUT_S = 10.0


def _describe(emulator: Emulator) -> str:
    """One line for a new user: where the emulated clock is (it may run ahead) and the sites."""
    mine = [s.site_id for s in emulator.specs.values() if s.partner_id == MAIN_PARTNER]
    sites = f"sites {mine[0]}-{mine[-1]}" if mine else "no sites"
    now = format_timestamp(emulator.clock.now())
    return (
        f"emulated clock {now} at speed {emulator.clock.speed:g} (GET /_emulator/clock); "
        f"partner {MAIN_PARTNER} owns {sites}"
    )


async def _announce(
    server: Server, url: str, ready: Callable[[str], None] | None, emulator: Emulator
) -> None:
    try:
        await asyncio.wait_for(server.listening.wait(), timeout=_STARTUP_TIMEOUT_S)
    except TimeoutError:
        logger.error("the emulator did not start listening on %s", url)
        return
    if not server.started:
        return
    logger.info("Cellect emulator listening on %s", url)
    logger.info("%s", _describe(emulator))
    if ready is not None:
        ready(url)


async def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 8081,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run the emulator's API on host:port until uvicorn is told to exit."""
    app = create_emulator_app(emulator)
    sock = bind(host, port)
    url = url_of(sock, host)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = Server(config)
    stop = asyncio.Event()

    async def run_server() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            stop.set()
            server.listening.set()  # never leave _announce waiting

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(run_server())
            group.create_task(emulator.run(stop, app=app))
            group.create_task(_announce(server, url, ready, emulator))
    finally:
        sock.close()
