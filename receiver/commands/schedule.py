"""`cellect-monitor schedule validate|post|delete`: check a schedule with the vendor's
rules, post it, delete what is not started yet.

    cellect-monitor schedule validate FILE [--rated-charge KW --rated-discharge KW] [--now TS]
    cellect-monitor schedule post SITE FILE
    cellect-monitor schedule delete SITE START END

FILE holds the Store Time Series body (`{"data": [{"startDate", "endDate", "essPowerAC"}]}`),
`-` reads standard input. `validate` applies the same rules as the Cellect API (the shared
validation module) and prints every violation with its Cellect error code; without
ratings the power limits are not checked. `post` reads the site's ratings from the API,
validates locally, and posts — a bad schedule fails before it leaves. `delete` deletes
the site's entries overlapping [START, END) that have not started (they become 4
Deleted, and the monitor hears so by webhook).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from receiver.cellect.clock import Clock
from receiver.cellect.errors import CellectError
from receiver.cellect.timestamps import format_timestamp, parse_timestamp
from receiver.cellect.validation import SiteRatings, Violation, validate_schedule
from receiver.commands import CommandError, load_settings
from receiver.settings import Settings
from receiver.vendor.client import CellectClient, ScheduleRejected

UNLIMITED = float("inf")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("schedule", help="validate or post a schedule")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("validate", help="check a schedule with the vendor's rules")
    check.add_argument("file", help="JSON body file, or - for standard input")
    check.add_argument("--rated-charge", type=float, help="the site's rated charge power, kW")
    check.add_argument("--rated-discharge", type=float, help="rated discharge power, kW")
    check.add_argument("--now", help="validate as of this UTC timestamp (default: now)")
    check.set_defaults(handler=validate)
    post = actions.add_parser("post", help="validate locally, then post to the Cellect API")
    post.add_argument("site", type=int, help="site id")
    post.add_argument("file", help="JSON body file, or - for standard input")
    post.set_defaults(handler=post_schedule)
    delete = actions.add_parser("delete", help="delete the entries of a window not started yet")
    delete.add_argument("site", type=int, help="site id")
    delete.add_argument("start", type=_moment, help="ISO-8601 timestamp with a zone")
    delete.add_argument("end", type=_moment, help="ISO-8601 timestamp with a zone")
    delete.set_defaults(handler=delete_schedule)


def _moment(text: str) -> datetime:
    moment = parse_timestamp(text)
    if moment is None:
        raise argparse.ArgumentTypeError("must be an ISO-8601 timestamp with a zone")
    return moment


def read_body(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{path} is not JSON: {exc}") from None


def print_violations(violations: list[Violation]) -> None:
    for v in violations:
        print(f"{v.code} {v.field}: {v.message}")


def validate(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.now is not None:
        parsed = parse_timestamp(args.now)
        if parsed is None:
            raise CommandError("--now must be an ISO-8601 timestamp with a zone, e.g. …Z")
        now = parsed
    charge = UNLIMITED if args.rated_charge is None else args.rated_charge
    discharge = UNLIMITED if args.rated_discharge is None else args.rated_discharge
    result = validate_schedule(read_body(args.file), SiteRatings(charge, discharge), now)
    if result.ok:
        limits = "" if args.rated_charge or args.rated_discharge else " (power limits unchecked)"
        print(f"valid: {len(result.entries)} entries{limits}")
        return 0
    print_violations(result.violations)
    return 1


def post_schedule(args: argparse.Namespace) -> int:
    body = read_body(args.file)
    settings = load_settings()
    if settings.refresh_token is None:
        raise CommandError("CELLECT_REFRESH_TOKEN is not set")
    try:
        sent = asyncio.run(_post(settings, args.site, body))
    except ScheduleRejected as exc:
        print_violations(list(exc.violations))
        return 1
    except CellectError as exc:
        raise CommandError(f"the Cellect API refused: {exc}") from None
    print(f"posted {sent} entries to site {args.site}")
    return 0


async def _post(settings: Settings, site_id: int, body: Any) -> int:
    async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
        client = CellectClient.from_settings(settings, http, Clock())
        info = await client.site_information(site_id)
        return len(await client.post_schedule(site_id, body, ratings=info))


def delete_schedule(args: argparse.Namespace) -> int:
    if args.end <= args.start:
        raise CommandError("END must be after START")
    settings = load_settings()
    if settings.refresh_token is None:
        raise CommandError("CELLECT_REFRESH_TOKEN is not set")
    try:
        asyncio.run(_delete(settings, args.site, args.start, args.end))
    except CellectError as exc:
        raise CommandError(f"the Cellect API refused: {exc}") from None
    window = f"{format_timestamp(args.start)} and {format_timestamp(args.end)}"
    print(f"deleted the entries of site {args.site} between {window} that had not started")
    return 0


async def _delete(settings: Settings, site_id: int, start: datetime, end: datetime) -> None:
    async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
        client = CellectClient.from_settings(settings, http, Clock())
        await client.delete_schedule(site_id, start, end)
