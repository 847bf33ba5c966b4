"""`cellect-monitor db upgrade|prune`: migrate the history store, or prune it by hand.

The database is `--database-url` or else `CELLECT_DATABASE_URL` (Settings). Each prints
one line; a bad or unreachable database is a `CommandError` (one line, exit status 2)
that never shows the URL's password.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from receiver.commands import CommandError, database, load_settings
from receiver.storage.engine import upgrade
from receiver.storage.retention import prune_once


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser("db", help="manage the history database")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = actions.add_parser("upgrade", help="create or migrate the schema to the newest version")
    up.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    up.set_defaults(handler=_upgrade)
    pr = actions.add_parser("prune", help="delete history older than the retention period now")
    pr.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    pr.add_argument(
        "--days", type=int, help="keep this many days (default: CELLECT_RETENTION_DAYS)"
    )
    pr.set_defaults(handler=_prune)


def _url(args: argparse.Namespace) -> str:
    return str(args.database_url or load_settings().database_url)


def _shown(engine: Engine) -> str:
    return make_url(engine.url).render_as_string(hide_password=True)


def _upgrade(args: argparse.Namespace) -> int:
    with database(_url(args), migrate=False) as engine:
        revision = upgrade(engine)
    print(f"database {_shown(engine)} is at schema revision {revision} (newest)")
    return 0


def _prune(args: argparse.Namespace) -> int:
    days = args.days if args.days is not None else load_settings().retention_days
    if days < 1:
        raise CommandError("--days must be at least 1")
    with database(_url(args), migrate=False) as engine:
        counts = prune_once(engine, datetime.now(UTC) - timedelta(days=days))
    summary = ", ".join(f"{table} {count}" for table, count in counts.items() if count)
    print(f"pruned history older than {days} days: {summary or 'nothing to delete'}")
    return 0
