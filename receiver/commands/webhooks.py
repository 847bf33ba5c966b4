"""`cellect-monitor webhooks url|replay`: the URL to register, and re-applying stored deliveries.

`webhooks url [--public-url URL]` prints the full webhook URL to register in the Cellect
partner dashboard, *with* its secret as `?token=` (CELLECT_WEBHOOK_SECRET, else the one
the monitor generated and keeps in its database — generated now if the monitor never
ran). It is the one place that prints the secret, on purpose, and only to stdout.

`webhooks replay --since T` re-applies every raw delivery received since T (ISO-8601
with a zone) by the status rules (docs/schedules.md), in one transaction, skipping what
each delivery already recorded: a second replay changes nothing. Both work on
CELLECT_DATABASE_URL (or --database-url), migrated first.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from datetime import datetime
from typing import TypeAlias
from urllib.parse import quote, urlsplit

from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import format_timestamp, parse_timestamp
from receiver.commands import CommandError, database, load_settings
from receiver.ingest.auth import load_webhook_secret
from receiver.settings import Settings
from receiver.storage.deliveries import deliveries_since, replay_deliveries
from receiver.storage.engine import session_factory
from receiver.web.app import WEBHOOK_PATH

Parsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Parsers) -> None:
    webhooks = subparsers.add_parser("webhooks", help="the webhook URL; replay stored deliveries")
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    url = actions.add_parser("url", help="print the URL (with its secret) to register")
    url.add_argument(
        "--public-url",
        help="how Cellect reaches this monitor, e.g. https://monitor.example.com "
        "(default: CELLECT_PUBLIC_URL, else http://CELLECT_HOST:CELLECT_PORT)",
    )
    url.set_defaults(handler=_url)
    replay = actions.add_parser("replay", help="re-apply the deliveries stored since a time")
    replay.add_argument(
        "--since", required=True, type=_since, help="ISO-8601 with zone, e.g. 2026-03-01T00:00Z"
    )
    replay.set_defaults(handler=_replay)
    for parser in (url, replay):
        parser.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")


def _since(value: str) -> datetime:
    moment = parse_timestamp(value)
    if moment is None:
        raise argparse.ArgumentTypeError("must be an ISO-8601 timestamp with a zone")
    return moment


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"database_url": args.database_url} if args.database_url else {}
    return load_settings(**overrides)


def webhook_url(base: str, secret: str | None) -> str:
    """`base` + the endpoint path (unless it is there already) + `?token=<secret>`."""
    base = base.rstrip("/")
    path = urlsplit(base).path
    url = base if path.endswith(WEBHOOK_PATH) else base + WEBHOOK_PATH
    if secret is None:
        return url
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}token={quote(secret, safe='')}"


def _base_url(args: argparse.Namespace, settings: Settings) -> str:
    base = args.public_url or settings.public_url
    if base is None:
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        base = f"http://{host}:{settings.port}"
        if _unreachable(settings.host):
            print(
                "note: Cellect cannot reach this address; pass the public one with --public-url",
                file=sys.stderr,
            )
    if not base.startswith(("http://", "https://")):
        raise CommandError("--public-url must start with http:// or https://")
    return base


def _unreachable(host: str) -> bool:
    """Loopback or unspecified: not an address the Cellect cloud can deliver to."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _url(args: argparse.Namespace) -> int:
    settings = _settings(args)
    base = _base_url(args, settings)
    with database(settings.database_url) as engine:
        secret = load_webhook_secret(settings, engine, Clock())
    if secret is None:
        print(
            "note: webhook authentication is disabled (CELLECT_WEBHOOK_AUTH_DISABLED)",
            file=sys.stderr,
        )
    print(webhook_url(base, secret))
    return 0


def _replay(args: argparse.Namespace) -> int:
    with database(_settings(args).database_url) as engine, session_factory(engine)() as session:
        count = len(deliveries_since(session=session, since=args.since))
        changes = replay_deliveries(session=session, since=args.since)
        session.commit()
    since = format_timestamp(args.since)  # in UTC, as every time the monitor shows
    print(f"replayed {count} deliveries received since {since}: {changes} status changes")
    return 0
