"""`cellect-monitor run --emulator`: the monitor beside an emulator in a process of its own.

The emulator (`cellect-monitor emulator …`, with its demo trader) runs as a child
process: at 10,000 demo sites its boxes and trader would otherwise share the monitor's
event loop and interpreter lock and leave the monitor unresponsive. The monitor follows
the child's clock (CELLECT_CLOCK_URL), polls it with a refresh token the child issues
at start, and has it post webhooks to the monitor once the monitor listens. Still one
command: Ctrl-C reaches both, a stopped monitor stops the child, and the kernel stops it
if the monitor is killed (`--parent-pid`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import httpx

from receiver.cellect.timestamps import parse_timestamp
from receiver.commands import CommandError

START_TIMEOUT_S = 60.0
TOKEN_VARIABLE = "CELLECT_EMULATOR_REFRESH_TOKEN"  # read by `cellect-monitor emulator`
DEMO_TRADER = "demo-trader"  # the resource type the emulator gives its trader's token


@asynccontextmanager
async def emulator_process(args: argparse.Namespace, token: str) -> AsyncIterator[str]:
    """The emulator the demo arguments describe, as a child process; yields its URL."""
    read_end, write_end = os.pipe()
    argv = [
        sys.executable, "-m", "receiver", "emulator",
        "--host", args.emulator_host, "--port", str(args.emulator_port),
        "--sites", str(args.sites), "--seed", str(args.seed), "--speed", str(args.speed),
        "--outage-rate", str(args.outage_rate),
        "--refresh-token-days", str(args.refresh_token_days),
        "--parent-pid", str(os.getpid()), "--ready-fd", str(write_end),
    ]  # fmt: skip
    if not args.no_demo_trader:
        argv.append("--demo-trader")
    child = _spawn(argv, write_end, token)
    os.close(write_end)
    try:
        url = await asyncio.wait_for(asyncio.to_thread(_read_line, read_end), START_TIMEOUT_S)
        if not url:
            raise CommandError("the emulator did not start (see its messages above)")
        yield url
    finally:
        os.close(read_end)
        await asyncio.to_thread(_stop, child)


def _spawn(argv: list[str], ready_fd: int, token: str) -> subprocess.Popen[bytes]:
    # The token rides in the environment, not on the command line `ps` shows.
    env = {**os.environ, TOKEN_VARIABLE: token}
    # Our own interpreter and module; the arguments are numbers and names.
    return subprocess.Popen(argv, pass_fds=(ready_fd,), env=env)  # noqa: S603


def _read_line(fd: int) -> str:
    with os.fdopen(os.dup(fd)) as pipe:
        return pipe.readline().strip()


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def demo_token() -> str:
    return secrets.token_urlsafe(24)


async def token_expiry(emulator_url: str) -> datetime | None:
    """When the demo's refresh token expires, as the emulator issued it."""
    async with httpx.AsyncClient(base_url=emulator_url, timeout=10) as http:
        tokens = (await http.get("/_emulator/refresh-tokens")).json()
    # The trader's own token is marked; the demo's is the other one.
    expiries = [
        parse_timestamp(t.get("expiresAt")) for t in tokens if t.get("resourceType") != DEMO_TRADER
    ]
    return max((e for e in expiries if e is not None), default=None)


async def subscribe(emulator_url: str, webhook_url: str) -> None:
    """Have the emulator post its webhooks to the monitor."""
    body = {"url": webhook_url, "description": "cellect-monitor"}
    async with httpx.AsyncClient(base_url=emulator_url, timeout=10) as http:
        (await http.post("/_emulator/webhooks", json=body)).raise_for_status()
