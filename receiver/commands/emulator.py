"""`cellect-monitor emulator`: serve the emulated Cellect cloud (Partner API + boxes).

    cellect-monitor emulator --port 8081 --sites 5 --seed 1 --refresh-token TOKEN \\
        [--speed X] [--outage-rate R] [--webhook-url URL [--webhook-secret S]] [--demo-trader]
        [--measurement-noise R]

`--refresh-token` pre-issues that refresh token to partner account 1 (without it, issue
one through `POST /_emulator/refresh-tokens`); `--webhook-url` subscribes that URL for
partner 1 at start-up. The URL is logged once the server accepts connections.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
from datetime import timedelta

from receiver.cellect.clock import Clock
from receiver.commands import CommandError
from receiver.emulator.cloud import Emulator
from receiver.emulator.server import serve
from receiver.logsetup import configure_logging
from receiver.runtime.serving import run_server

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emulator", help="serve the emulated Cellect Partner API and boxes"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8081, help="port (0: any free port)")
    parser.add_argument("--sites", type=int, default=5, help="sites of partner account 1")
    parser.add_argument("--seed", type=int, default=1, help="seed of portfolio and randomness")
    parser.add_argument("--refresh-token", help="pre-issue this refresh token to partner 1")
    parser.add_argument("--speed", type=float, default=1.0, help="emulated seconds per second")
    parser.add_argument("--outage-rate", type=float, default=0.0, help="random outages/site/day")
    parser.add_argument("--webhook-url", help="subscribe this URL for partner 1's webhooks")
    parser.add_argument("--webhook-secret", help="Standard Webhooks signing secret for it")
    parser.add_argument("--demo-trader", action="store_true", help="post demo schedules")
    parser.add_argument(
        "--measurement-noise",
        type=float,
        default=0.0,
        help="the meters' relative noise on power readings (0: exact, at most 0.5)",
    )
    parser.add_argument(
        "--refresh-token-days", type=float, help="life of --refresh-token (emulated days)"
    )
    # For `run --emulator`, which starts this command as its child process:
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--ready-fd", type=int, help="write the URL to this fd once listening")
    parser.set_defaults(handler=run)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise CommandError("--port must be between 0 and 65535")
    if args.sites < 0:
        raise CommandError("--sites must be >= 0")
    if args.speed < 0 or args.outage_rate < 0:
        raise CommandError("--speed and --outage-rate must be >= 0")
    if not 0 <= args.measurement_noise <= 0.5:
        raise CommandError("--measurement-noise must be between 0 and 0.5")
    if args.webhook_secret and not args.webhook_url:
        raise CommandError("--webhook-secret needs --webhook-url")
    if args.refresh_token is not None and len(args.refresh_token.strip()) < 8:
        raise CommandError("--refresh-token must have at least 8 characters")


def build(args: argparse.Namespace) -> Emulator:
    """The emulator the arguments describe, with its token and subscription."""
    emulator = Emulator(
        sites=args.sites,
        seed=args.seed,
        clock=Clock(speed=args.speed),
        outage_rate_per_day=args.outage_rate,
        demo_trader=args.demo_trader,
        measurement_noise=args.measurement_noise,
    )
    if args.refresh_token:
        lifetime = args.refresh_token_days
        clock = emulator.clock
        expires = clock.now() + timedelta(days=lifetime) if lifetime is not None else None
        emulator.issue_refresh_token(1, token=args.refresh_token.strip(), expires_at=expires)
    if args.webhook_url:
        emulator.subscribe(args.webhook_url, signing_secret=args.webhook_secret or None)
    return emulator


def run(args: argparse.Namespace) -> int:
    _check(args)
    configure_logging()  # httpx quiet: the demo trader would log every request it makes
    if args.refresh_token is None:  # `run --emulator` hands it over out of `ps`'s sight
        args.refresh_token = os.environ.get("CELLECT_EMULATOR_REFRESH_TOKEN")
    if args.parent_pid is not None:
        _die_with(args.parent_pid)
    emulator = build(args)
    if not args.refresh_token:
        logger.info("no --refresh-token: issue one with POST /_emulator/refresh-tokens")
    try:
        run_server(_serve(emulator, args))
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    return 0


async def _serve(emulator: Emulator, args: argparse.Namespace) -> None:
    def ready(url: str) -> None:
        if args.ready_fd is not None:
            with os.fdopen(args.ready_fd, "w") as pipe:
                pipe.write(url + "\n")

    await serve(emulator, args.host, args.port, ready=ready)


def _die_with(parent_pid: int) -> None:
    """Have the kernel send SIGTERM (a graceful stop) once `parent_pid` — the monitor
    that started this emulator — is gone, even killed with SIGKILL (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before the line above took effect
        raise CommandError("the process that started the emulator is gone")


_PR_SET_PDEATHSIG = 1
