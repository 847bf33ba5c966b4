"""`cellect-monitor admin token`: print the operator API's bearer token.

CELLECT_ADMIN_TOKEN when set, else the token the monitor generated on its first start and
keeps in its database — generated now if the monitor never ran, so the monitor started
afterwards uses the same one. Like `webhooks url`, it prints a secret on purpose, to
stdout only:

    curl -H "Authorization: Bearer $(cellect-monitor admin token)" \\
         http://127.0.0.1:8080/api/silences

Works on CELLECT_DATABASE_URL (or --database-url), migrated first.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from receiver.cellect.clock import Clock
from receiver.commands import CommandError
from receiver.settings import Settings, describe_error
from receiver.storage.engine import DatabaseUrlError, create_engine_for, upgrade
from receiver.web.operator_api import load_admin_token

Parsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Parsers) -> None:
    admin = subparsers.add_parser("admin", help="the operator API's admin token")
    actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    token = actions.add_parser("token", help="print the admin token (Authorization: Bearer)")
    token.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    token.set_defaults(handler=_token)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"database_url": args.database_url} if args.database_url else {}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise CommandError(describe_error(exc)) from None


def _token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        engine = create_engine_for(settings.database_url)
    except DatabaseUrlError as exc:
        raise CommandError(str(exc)) from None
    try:
        upgrade(engine)
        token = load_admin_token(settings, engine, Clock())
    except SQLAlchemyError as exc:
        # The driver's first line names what failed, never the URL's password.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise CommandError(f"database error: {reason[0] if reason else 'unknown'}") from None
    finally:
        engine.dispose()
    print(token)
    return 0
