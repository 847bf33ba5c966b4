"""`cellect-monitor schedule validate|post|delete`: check a schedule with the vendor's
rules, post it, delete what is not started yet.

    cellect-monitor schedule validate FILE [--rated-charge KW --rated-discharge KW] [--now TS]
    cellect-monitor schedule validate FILE --site N
    cellect-monitor schedule post SITE FILE
    cellect-monitor schedule delete SITE START END

FILE holds the Store Time Series body (`{"data": [{"startDate", "endDate", "essPowerAC"}]}`),
`-` reads standard input. `validate` applies the same rules as the Cellect API (the shared
validation module) and prints every violation with its Cellect error code; without
ratings the power limits are not checked. With `--site N` it reads the site's state
from the API (SoC, capacity, ratings, and its plan ahead from ExAnte), validates with
its ratings, and simulates the file as the vendor would apply it — replacing the
planned entries it overlaps, a running one kept until the file's first entry starts —
from the site's SoC now (receiver.analytics.trajectory, with the monitor's settings
`CELLECT_PLAN_SOC_MIN`/`_MAX` and `CELLECT_ROUND_TRIP_EFFICIENCY`): it prints the plan's
lowest and highest SoC and, when the plan leaves the usable range, when, during which
entry and the shortfall in kWh, and exits 1 (as for a violation). `post` reads the
site's ratings from the API, validates locally, and posts — a bad schedule fails
before it leaves. `delete` deletes the site's entries overlapping [START, END) that
have not started (they become 4 Deleted, and the monitor hears so by webhook).
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

from receiver.analytics.trajectory import Battery, Entry, Physics, forecast
from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.errors import CellectError
from receiver.cellect.models import SiteInformation, TimeSeriesResult
from receiver.cellect.timestamps import format_timestamp, parse_timestamp
from receiver.cellect.validation import (
    MAX_HORIZON,
    SiteRatings,
    Violation,
    validate_schedule,
)
from receiver.commands import CommandError, load_settings
from receiver.settings import Settings
from receiver.vendor.client import CellectClient, ScheduleRejected

UNLIMITED = float("inf")
PLANNED = (ImplementationStatus.IN_PROGRESS, ImplementationStatus.IMPLEMENTED)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("schedule", help="validate or post a schedule")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("validate", help="check a schedule with the vendor's rules")
    check.add_argument("file", help="JSON body file, or - for standard input")
    check.add_argument("--rated-charge", type=float, help="the site's rated charge power, kW")
    check.add_argument("--rated-discharge", type=float, help="rated discharge power, kW")
    check.add_argument("--now", help="validate as of this UTC timestamp (default: now)")
    check.add_argument(
        "--site", type=int, help="also simulate it against this site's state (reads the API)"
    )
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
    if args.site is not None:
        return _validate_against_site(args)
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


def _validate_against_site(args: argparse.Namespace) -> int:
    if args.now is not None:
        raise CommandError("--now cannot be used with --site: the site's state is now's")
    body = read_body(args.file)
    settings = load_settings()
    if settings.refresh_token is None:
        raise CommandError("CELLECT_REFRESH_TOKEN is not set")
    try:
        info, ahead = asyncio.run(_site_state(settings, args.site))
    except CellectError as exc:
        raise CommandError(f"the Cellect API refused: {exc}") from None
    now = datetime.now(UTC)
    ratings = SiteRatings(info.ess_power_ac_rated_charge, info.ess_power_ac_rated_discharge)
    result = validate_schedule(body, ratings, now)
    if not result.ok:
        print_violations(result.violations)
        return 1
    posted = [Entry(e.start_date.timestamp(), e.end_date.timestamp(), e.ess_power_ac)
              for e in result.entries]  # fmt: skip
    plan = _as_applied(ahead, posted)
    physics = Physics(settings.plan_soc_min, settings.plan_soc_max, settings.round_trip_efficiency)
    battery = Battery(
        info.ess_soc / 100.0, info.ess_installed_energy_capacity,
        info.ess_power_ac_rated_charge, info.ess_power_ac_rated_discharge,
    )  # fmt: skip
    found = forecast(battery, plan, now.timestamp(), physics)
    print(f"valid: {len(result.entries)} entries")
    if found is None:
        print(f"site {args.site} reports no capacity: the plan cannot be simulated")
        return 0
    kept = len(plan) - len(posted)
    print(
        f"site {args.site}: SoC {info.ess_soc:g} % of {info.ess_installed_energy_capacity:g} kWh"
        f" now; with {kept} planned entries kept, the plan goes from {found.soc_min:.1%} to "
        f"{found.soc_max:.1%} (usable {physics.soc_min:.0%}–{physics.soc_max:.0%})"
    )
    breach = found.breach
    if breach is None:
        print("the plan holds: it stays within the usable range")
        return 0
    entry = breach.entry
    what = "empties" if breach.limit == "empty" else "fills up"
    print(
        f"infeasible: the battery {what} at {_stamp(breach.at)}, during the entry "
        f"{_stamp(entry.start)} – {_stamp(entry.end)} at {entry.power_kw:g} kW; "
        f"shortfall {breach.shortfall_kwh:.1f} kWh"
    )
    return 1


def _stamp(timestamp: float) -> str:
    return format_timestamp(datetime.fromtimestamp(timestamp, UTC))


def _as_applied(ahead: list[TimeSeriesResult], posted: list[Entry]) -> list[Entry]:
    """The site's plan once `posted` is stored: planned entries it overlaps are replaced
    (a running one keeps running until the first posted entry starts), the rest kept."""
    first = min(e.start for e in posted)
    kept: list[Entry] = []
    for r in ahead:
        if r.implementation_status not in PLANNED:
            continue
        entry = Entry(r.start_date.timestamp(), r.end_date.timestamp(), r.ess_power_ac)
        if not any(entry.start < p.end and p.start < entry.end for p in posted):
            kept.append(entry)
        elif entry.start < first:  # running (or starting before the post): cut there
            kept.append(Entry(entry.start, first, entry.power_kw))
    return sorted(kept + posted)


async def _site_state(
    settings: Settings, site_id: int
) -> tuple[SiteInformation, list[TimeSeriesResult]]:
    async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
        client = CellectClient.from_settings(settings, http, Clock())
        info = await client.site_information(site_id)
        now = datetime.now(UTC)
        ahead = await client.ex_ante(site_id, now, now + MAX_HORIZON)
        return info, ahead
