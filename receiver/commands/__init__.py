"""Sub-commands of the CLI: every module here that defines `register(subparsers)` is one.

Its handler (set with `parser.set_defaults(handler=...)`) returns the exit code. The
CLI is the one place (with the tests) allowed to wire the emulator to the service.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def registrars() -> list[Registrar]:
    """The `register` function of each command module, in name order."""
    found: list[Registrar] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            found.append(register)
    return found
