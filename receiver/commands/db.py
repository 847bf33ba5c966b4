"""`cellect-monitor db upgrade|prune`: migrate the history store, or prune it by hand.

The database is `--database-url` or else `CELLECT_DATABASE_URL` (Settings). Each prints
one line; a bad or unreachable database is a `CommandError` (one line, exit status 2)
that never shows the URL's password.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from receiver.commands import CommandError
from receiver.settings import Settings, describe_error
from receiver.storage.engine import DatabaseUrlError, create_engine_for, upgrade
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


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise CommandError(describe_error(exc)) from None


def _engine(args: argparse.Namespace) -> Engine:
    url = args.database_url or _settings().database_url
    try:
        return create_engine_for(url)
    except DatabaseUrlError as exc:
        raise CommandError(str(exc)) from None


def _shown(engine: Engine) -> str:
    return make_url(engine.url).render_as_string(hide_password=True)


def _database_error(exc: SQLAlchemyError) -> CommandError:
    # The driver's own first line: says what failed (host, file) without the password.
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return CommandError(f"database error: {reason[0] if reason else type(exc).__name__}")


def _upgrade(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        revision = upgrade(engine)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    finally:
        engine.dispose()
    print(f"database {_shown(engine)} is at schema revision {revision} (newest)")
    return 0


def _prune(args: argparse.Namespace) -> int:
    days = args.days if args.days is not None else _settings().retention_days
    if days < 1:
        raise CommandError("--days must be at least 1")
    engine = _engine(args)
    try:
        counts = prune_once(engine, datetime.now(UTC) - timedelta(days=days))
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    finally:
        engine.dispose()
    summary = ", ".join(f"{table} {count}" for table, count in counts.items() if count)
    print(f"pruned history older than {days} days: {summary or 'nothing to delete'}")
    return 0
