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

from receiver.cellect.clock import Clock
from receiver.commands import database, load_settings
from receiver.web.operator_api import load_admin_token

Parsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Parsers) -> None:
    admin = subparsers.add_parser("admin", help="the operator API's admin token")
    actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    token = actions.add_parser("token", help="print the admin token (Authorization: Bearer)")
    token.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    token.set_defaults(handler=_token)


def _token(args: argparse.Namespace) -> int:
    overrides = {"database_url": args.database_url} if args.database_url else {}
    settings = load_settings(**overrides)
    with database(settings.database_url) as engine:
        token = load_admin_token(settings, engine, Clock())
    print(token)
    return 0
