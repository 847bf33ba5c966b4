"""Serve an `Emulator` over HTTP with uvicorn, next to its background loop.

Through `receiver.runtime.serving`, as the monitor is served: `serve()` binds the
socket itself (port 0 picks a free port and the real URL is known), runs the emulator's
background loop beside uvicorn, calls `ready(url)` once the server accepts connections,
and stops the loop when uvicorn exits (SIGINT/SIGTERM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from receiver.cellect.timestamps import format_timestamp
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.emulator.portfolio import MAIN_PARTNER
from receiver.runtime.serving import bind, serve_app, url_of

logger = logging.getLogger(__name__)


def _describe(emulator: Emulator) -> str:
    """One line for a new user: where the emulated clock is (it may run ahead) and the sites."""
    mine = [s.site_id for s in emulator.specs.values() if s.partner_id == MAIN_PARTNER]
    sites = f"sites {mine[0]}-{mine[-1]}" if mine else "no sites"
    now = format_timestamp(emulator.clock.now())
    return (
        f"emulated clock {now} at speed {emulator.clock.speed:g} (GET /_emulator/clock); "
        f"partner {MAIN_PARTNER} owns {sites}"
    )


async def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 8081,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run the emulator's API on host:port, with its clock, boxes and webhooks beside it,
    until uvicorn is told to exit; `ready(url)` once it accepts connections."""
    app = create_emulator_app(emulator)
    sock = bind(host, port)
    url = url_of(sock, host)

    def announce() -> None:
        logger.info("Cellect emulator listening on %s", url)
        logger.info("%s", _describe(emulator))
        if ready is not None:
            ready(url)

    await serve_app(
        app,
        sock,
        ready=announce,
        access_log=False,
        lifespan="off",
        beside=lambda stop: emulator.run(stop, app=app),
    )
