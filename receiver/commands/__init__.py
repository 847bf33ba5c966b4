"""Sub-commands of the CLI: every module here that defines `register(subparsers)` is one.

Its handler (set with `parser.set_defaults(handler=...)`) returns the exit code. The
CLI is the one place (with the tests) allowed to wire the emulator to the service.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from receiver.settings import Settings, describe_error
from receiver.storage.engine import DatabaseUrlError, create_engine_for, upgrade

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def load_settings(**overrides: Any) -> Settings:
    """The CELLECT_ settings (with `overrides`); a bad one is a CommandError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise CommandError(describe_error(exc)) from None


@contextmanager
def database(url: str, *, migrate: bool = True) -> Iterator[Engine]:
    """An engine on `url`, migrated to the newest schema unless `migrate` is False, and
    disposed of afterwards. A bad URL or a database error inside is a CommandError
    with the driver's first line: it says what failed (host, file), never the password."""
    try:
        engine = create_engine_for(url)
    except DatabaseUrlError as exc:
        raise CommandError(str(exc)) from None
    try:
        if migrate:
            upgrade(engine)
        yield engine
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise CommandError(
            f"database error: {reason[0] if reason else type(exc).__name__}"
        ) from None
    finally:
        engine.dispose()


def registrars() -> list[Registrar]:
    """The `register` function of each command module, in name order."""
    found: list[Registrar] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            found.append(register)
    return found
