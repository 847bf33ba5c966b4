"""`cellect-monitor` as a user runs it: a subprocess configured by CELLECT_ variables only,
its output (access log included) in a file, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**cellect: str) -> dict[str, str]:
    """This process's environment without any CELLECT_ variable, plus `cellect`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
    return {**env, **cellect}


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One `cellect-monitor` command, as a subprocess."""
    command = [sys.executable, "-m", "receiver", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@dataclass
class Running:
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # a bounded poll for the server to listen, not a stand-in for time
    raise AssertionError(f"{url}/healthz did not answer within 60 s")


@contextmanager
def running_monitor(workdir: Path, env: dict[str, str]) -> Iterator[Running]:
    """`cellect-monitor run` with `env` (CELLECT_PORT must be set), until SIGTERM."""
    log = workdir / f"monitor-{env['CELLECT_PORT']}.log"
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would stall the monitor
        process = subprocess.Popen(
            [sys.executable, "-m", "receiver", "run"],
            env=env,
            cwd=workdir,
            stdout=sink,
            stderr=sink,
        )
    running = Running(f"http://127.0.0.1:{env['CELLECT_PORT']}", log)
    try:
        _wait_healthy(running.url, process, log)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
