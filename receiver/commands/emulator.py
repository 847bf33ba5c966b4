"""`cellect-monitor emulator`: serve the emulated Cellect cloud (Partner API + boxes).

    cellect-monitor emulator --port 8081 --sites 5 --seed 1 --refresh-token TOKEN \\
        [--speed X] [--outage-rate R] [--webhook-url URL [--webhook-secret S]] [--demo-trader]

`--refresh-token` pre-issues that refresh token to partner account 1 (without it, issue
one through `POST /_emulator/refresh-tokens`); `--webhook-url` subscribes that URL for
partner 1 at start-up. The URL is logged once the server accepts connections.
"""

from __future__ import annotations

import argparse
import logging

from receiver.cellect.clock import Clock
from receiver.commands import CommandError
from receiver.emulator.cloud import Emulator
from receiver.emulator.server import serve
from receiver.serving import run_server

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
    parser.set_defaults(handler=run)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise CommandError("--port must be between 0 and 65535")
    if args.sites < 0:
        raise CommandError("--sites must be >= 0")
    if args.speed < 0 or args.outage_rate < 0:
        raise CommandError("--speed and --outage-rate must be >= 0")
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
    )
    if args.refresh_token:
        emulator.issue_refresh_token(1, token=args.refresh_token.strip())
    if args.webhook_url:
        emulator.subscribe(args.webhook_url, signing_secret=args.webhook_secret or None)
    return emulator


def run(args: argparse.Namespace) -> int:
    _check(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    emulator = build(args)
    if not args.refresh_token:
        logger.info("no --refresh-token: issue one with POST /_emulator/refresh-tokens")
    try:
        run_server(serve(emulator, args.host, args.port))
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    return 0
