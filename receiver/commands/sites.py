"""`cellect-monitor sites`: every site with its SoC, power, availability and last update.

Reads the database of CELLECT_DATABASE_URL (or --database-url) through the read API's
queries (receiver.storage.reads.sites), page by page; `--format json|csv` prints what
`GET /api/v1/sites` answers.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from receiver.cellect.clock import Clock
from receiver.commands import database, load_settings
from receiver.commands.output import FORMATS, fixed, print_as
from receiver.storage.engine import session_factory
from receiver.storage.reads import MAX_LIMIT, all_items
from receiver.storage.reads.sites import SiteSummary, site_page
from receiver.web.read_rows import SITES_CSV, site_json

Parsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
HEADER = ("SITE", "NAME", "SOC %", "POWER kW", "AVAILABLE", "IN PORTFOLIO", "LAST UPDATE")


def register(subparsers: Parsers) -> None:
    sites = subparsers.add_parser("sites", help="every site: SoC, power, availability")
    sites.add_argument("--format", choices=FORMATS, default="table")
    sites.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    sites.set_defaults(handler=_sites)


def _row(site: SiteSummary) -> tuple[object, ...]:
    available = "yes" if site.available else f"no, since {site.unavailable_since:%Y-%m-%d %H:%M}"
    updated = site.measured_at.isoformat(timespec="seconds") if site.measured_at else None
    return (site.site_id, site.name, fixed(site.soc_pct), fixed(site.power_kw), available,
            "yes" if site.present else "no", updated)  # fmt: skip


def _sites(args: argparse.Namespace) -> int:
    url = args.database_url or load_settings().database_url
    now = Clock().now()
    with database(url) as engine, session_factory(engine)() as session:
        found = list(
            all_items(lambda c: site_page(session=session, now=now, after=c, limit=MAX_LIMIT))
        )
    print_as(
        args.format, found, json_of=site_json, csv_shape=SITES_CSV, header=HEADER, row=_row,
        empty="no site is known yet",
    )  # fmt: skip
    return 0
