"""The product as a user runs it: `python -m receiver run …` as a child process,
configured by environment variables, on a free loopback port, its output in a log file.

    monitor = Product(tmp_path, CELLECT_DATABASE_URL=url, CELLECT_WEBHOOK_SECRET=s)
    await monitor.start()        # waits (bounded) for /healthz
    monitor.terminate()          # SIGTERM and wait; monitor.kill(): SIGKILL
    monitor.output()             # everything it printed

    async with replica_set(tmp_path, 3, CELLECT_DATABASE_URL=url) as monitors:
        ...                      # three of them, started at the same moment

`python -m receiver` is the console script `cellect-monitor` (the same `main`).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from receiver.runtime.serving import bind

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    sock = bind("127.0.0.1", 0)
    try:
        port: int = sock.getsockname()[1]
        return port
    finally:
        sock.close()


class Product:
    """One `cellect-monitor run` child; restartable on the same port and settings."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.args: Sequence[str] = args
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
        self.env = {**inherited, "PYTHONPATH": str(ROOT), "CELLECT_PORT": str(self.port), **env}
        self.log = workdir / "monitor.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ended: list[int] = []  # pids of the children that have gone, oldest first

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, within: float = 60.0) -> None:
        """Start the child and wait until /healthz answers (bounded)."""
        self.process = self._spawn()
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"the monitor exited during start-up:\n{self.tail()}")
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the monitor did not start within {within} s:\n{self.tail()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "receiver", "run", *self.args],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        self._end(signal.SIGKILL)

    def terminate(self, within: float = 60.0) -> int:
        """SIGTERM, as a service manager stops it; its exit status."""
        return self._end(signal.SIGTERM, within)

    def _end(self, sig: signal.Signals, within: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        code = self.process.wait(timeout=within)
        self.ended.append(self.process.pid)
        return code

    def stop(self) -> None:
        """Make sure the child is gone (for `finally`)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


@asynccontextmanager
async def replica_set(workdir: Path, count: int, **env: str) -> AsyncIterator[list[Product]]:
    """`count` replicas of `cellect-monitor run` with the same environment `env` (one
    database), each on a port and in a directory (its log) of its own, started at the
    same moment; every one is stopped on exit (SIGKILL if it still runs)."""
    monitors = []
    settings: dict[str, Any] = env  # only CELLECT_ variables, never `port`
    for index in range(count):
        (workdir / f"replica-{index}").mkdir()
        monitors.append(Product(workdir / f"replica-{index}", **settings))
    try:
        async with asyncio.TaskGroup() as starting:
            for monitor in monitors:
                starting.create_task(monitor.start())
        yield monitors
    finally:
        for monitor in monitors:
            monitor.stop()


def writer_processes(monitor_pid: int) -> list[int]:
    """The pids of the webhook writer processes started by the monitor `monitor_pid`."""
    marker = b"receiver.ingest.writer_child\0--fd\0"
    parent = f"--parent-pid\0{monitor_pid}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if marker in cmdline and parent in cmdline:
            found.append(int(entry.name))
    return found


def peer_socket_option(pid: int, peer: tuple[str, int], level: int, option: int) -> int:
    """An option of the socket that process `pid` holds connected to `peer` (our end):
    read on a duplicate of its descriptor (pidfd_getfd, Linux ≥ 5.6)."""
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                continue
            local = _LIBC.syscall(_PIDFD_GETFD, pidfd, int(name), 0)
            if local < 0:
                continue
            sock = socket.socket(fileno=local)
            try:
                if sock.type == socket.SOCK_STREAM and sock.getpeername()[:2] == peer:
                    return sock.getsockopt(level, option)
            except OSError:  # not connected, not inet
                pass
            finally:
                sock.close()
    finally:
        os.close(pidfd)
    raise AssertionError(f"process {pid} holds no socket connected to {peer}")


_LIBC = ctypes.CDLL(None, use_errno=True)
_PIDFD_GETFD = 438  # the syscall's number on every architecture since Linux 5.6
