"""The servers the CLI starts answer without waiting for Nagle: TCP_NODELAY on every
accepted connection, for the monitor and the emulator alike."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from receiver.runtime.serving import FULL_COLLECTION_AFTER, GIL_SWITCH_S
from tests.support.product import ROOT, Product, free_port, peer_socket_option

pytestmark = pytest.mark.anyio


def _nodelay_of_keepalive_connection(port: int, server_pid: int) -> int:
    """One keep-alive request to /healthz; TCP_NODELAY of the server's end meanwhile."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in client.recv(4096).split(b"\r\n")[0]
        return peer_socket_option(
            server_pid, client.getsockname()[:2], socket.IPPROTO_TCP, socket.TCP_NODELAY
        )


async def test_the_monitor_sets_tcp_nodelay(sqlite_url: str, tmp_path: Path) -> None:
    """`cellect-monitor run` as shipped: its end of a client connection has TCP_NODELAY."""
    monitor = Product(tmp_path, CELLECT_DATABASE_URL=sqlite_url, CELLECT_WEBHOOK_SECRET="s" * 24)
    try:
        await monitor.start()
        assert _nodelay_of_keepalive_connection(monitor.port, monitor.pid) == 1
    finally:
        monitor.stop()


@contextmanager
def _emulator(workdir: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    argv = [sys.executable, "-m", "receiver", "emulator", "--port", str(port), "--sites", "1"]
    with (workdir / "emulator.log").open("ab") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port, process.pid
    finally:
        process.kill()
        process.wait(timeout=30)


async def test_the_emulator_sets_tcp_nodelay(tmp_path: Path) -> None:
    """`cellect-monitor emulator`: its end of a client connection has TCP_NODELAY too."""
    with _emulator(tmp_path) as (port, pid):
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the emulator did not start"
                await asyncio.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET /_emulator/clock HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200" in client.recv(4096).split(b"\r\n")[0]
            nodelay = peer_socket_option(
                pid, client.getsockname()[:2], socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
        assert nodelay == 1


SERVE_AND_REPORT = """
import gc, os, signal, sys
print("switch-before", sys.getswitchinterval(), flush=True)
from receiver.runtime.serving import bind, run_server, serve_app

async def app(scope, receive, send):
    raise RuntimeError("not asked")

def ready():
    print("frozen", gc.get_freeze_count(), "tracked", len(gc.get_objects()), flush=True)
    print("switch-interval", sys.getswitchinterval(), flush=True)
    print("full-after", gc.get_threshold()[2], flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

before = len(gc.get_objects())
print("tracked-before", before, flush=True)
run_server(serve_app(app, bind("127.0.0.1", 0), ready=ready, lifespan="off"))
"""


def _served_and_reported() -> dict[str, str]:
    """What SERVE_AND_REPORT printed, by name: a server started in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_REPORT], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    return dict(zip(words[::2], words[1::2], strict=True))


def test_what_start_up_made_is_out_of_the_collectors_sight_once_serving() -> None:
    """Once a server listens, start-up's objects are frozen (gc.freeze): a full
    collection no longer walks them (each walk stopped the loop for 60-90 ms under
    load), and what the collector still tracks is a small part of what it tracked."""
    seen = _served_and_reported()
    before = int(seen["tracked-before"])
    frozen, tracked = int(seen["frozen"]), int(seen["tracked"])
    assert frozen >= before
    assert tracked < before / 10
    # ... and full collections, which walk all that is left, come ten times more rarely.
    assert int(seen["full-after"]) == FULL_COLLECTION_AFTER == 100


def test_once_serving_a_worker_thread_hands_the_gil_back_within_half_a_millisecond() -> None:
    """Python's default switch interval (5 ms) is what a request on the loop waited for
    the GIL at each step while a worker thread ran (docs/performance.md); a server
    shortens it once it listens, and not before (start-up has no requests to serve)."""
    seen = _served_and_reported()
    assert float(seen["switch-before"]) == 0.005
    assert float(seen["switch-interval"]) == GIL_SWITCH_S
