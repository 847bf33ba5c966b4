"""The `cellect-monitor` command line: one sub-command group per module in `receiver.commands`.

Each command module exposes `register(subparsers)`; its handler returns the exit code.
Errors meant for the user are `CommandError`s: printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from receiver import __version__
from receiver.commands import CommandError, registrars


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellect-monitor",
        description="Monitor battery sites run through the Cellect Partner API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in registrars():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except CommandError as exc:
        print(f"cellect-monitor: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
