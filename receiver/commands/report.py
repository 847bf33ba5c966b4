"""`cellect-monitor report`: delivered against planned energy, per site and per entry.

    cellect-monitor report --from 2026-03-01T00:00:00Z --to 2026-03-02T00:00:00Z
                           [--site N] [--format table|json|csv]

Reads the database of CELLECT_DATABASE_URL (or --database-url): the entries starting in
`[from, to)` whose energy the monitor computed, each site's summary row first
(receiver.storage.reads.energy). `--format json|csv` prints what `GET /api/v1/energy`
answers (its `items`). Bad input is a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TypeAlias

from receiver.cellect.timestamps import parse_timestamp
from receiver.commands import CommandError, database, load_settings
from receiver.commands.output import FORMATS, fixed, print_as
from receiver.storage.engine import session_factory
from receiver.storage.reads import ReadError
from receiver.storage.reads.energy import EnergyReportRow, energy_report
from receiver.web.read_rows import ENERGY_CSV, energy_json

Parsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
HEADER = ("SITE", "ROW", "START", "END", "STATUS", "METHOD", "PLANNED kWh", "DELIVERED kWh",
          "DEVIATION kWh", "ERROR %", "FAILURES", "AVAILABLE %")  # fmt: skip


def register(subparsers: Parsers) -> None:
    report = subparsers.add_parser(
        "report", help="delivered against planned energy per site and entry"
    )
    report.add_argument("--from", dest="start", required=True, help="ISO-8601 time with a zone")
    report.add_argument("--to", dest="end", required=True, help="ISO-8601 time with a zone")
    report.add_argument("--site", type=int, help="one site's rows only")
    report.add_argument("--format", choices=FORMATS, default="table")
    report.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    report.set_defaults(handler=_report)


def _moment(raw: str, flag: str) -> datetime:
    moment = parse_timestamp(raw)
    if moment is None:
        example = "2026-03-02T08:00:00Z"
        raise CommandError(f"{flag} must be an ISO-8601 time with a zone, e.g. {example}")
    return moment


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.1f}"


def _row(r: EnergyReportRow) -> tuple[object, ...]:
    status = None if r.status is None else str(r.status)
    return (r.site_id, r.row, r.start_at.isoformat(timespec="seconds"),
            r.end_at.isoformat(timespec="seconds"), status, r.method, fixed(r.planned_kwh, 2),
            fixed(r.delivered_kwh, 2), fixed(r.deviation_kwh, 2), _percent(r.tracking_error),
            r.failures, _percent(r.availability_share))  # fmt: skip


def _report(args: argparse.Namespace) -> int:
    start, end = _moment(args.start, "--from"), _moment(args.end, "--to")
    if args.site is not None and args.site < 0:
        raise CommandError("--site must be a site id (>= 0)")
    url = args.database_url or load_settings().database_url
    with database(url) as engine, session_factory(engine)() as session:
        try:
            found = energy_report(session=session, start=start, end=end, site_id=args.site)
        except ReadError as exc:
            flag = {"from": "--from", "to": "--to"}.get(exc.field, exc.field)
            raise CommandError(f"{flag}: {exc}") from None
    print_as(
        args.format, found, json_of=energy_json, csv_shape=ENERGY_CSV, header=HEADER, row=_row,
        empty="no entry with its energy computed starts in that window",
    )  # fmt: skip
    return 0
