"""`cellect-monitor alerts list|test|silence|silences|expire`: the alerts, try the targets,
manage silences.

`alerts list` prints the firing alerts (`--all`: resolved ones too, most recent first)
from the database, through the read API's queries; `--format json` prints what
`GET /api/v1/alerts` answers.

`alerts test` sends a test notification to every configured Apprise target
(CELLECT_APPRISE_URLS / CELLECT_APPRISE_CONFIG) and prints one line per target, named
by Apprise's privacy view of its URL (no passwords or tokens); the exit status is 1 if
any target failed. The silence commands work on the database of CELLECT_DATABASE_URL
(or --database-url), migrated first so they also work before the monitor's first run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TypeAlias, TypeVar

from pydantic import ValidationError

from receiver.alerting.notify.notifier import Notifier, NotifierConfigError
from receiver.alerting.silences import (
    InvalidSilence,
    SilenceIn,
    SilenceService,
    parse_silence_id,
    silence_json,
)
from receiver.cellect.clock import Clock
from receiver.commands import CommandError, database, load_settings
from receiver.commands.output import print_json, print_table
from receiver.storage.engine import session_factory
from receiver.storage.reads import MAX_LIMIT, all_items
from receiver.storage.reads.alerts import AlertFilter, AlertView, alert_page
from receiver.web.read_rows import item_json

T = TypeVar("T")
_OPTIONS = {
    "duration": "--for",
    "comment": "--comment",
    "created_by": "--by",
    "matchers": "--rule/--site/--match",
}
Parsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Parsers) -> None:
    alerts = subparsers.add_parser("alerts", help="test notification targets, manage silences")
    actions = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the firing alerts (--all: resolved too)")
    listing.add_argument("--all", action="store_true", help="resolved alerts too")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    listing.set_defaults(handler=_list_alerts)
    test = actions.add_parser("test", help="send a test notification to every target")
    test.set_defaults(handler=_test)
    _silence_parser(actions)
    listing = actions.add_parser("silences", help="list the silences in force")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id", type=_silence_id, metavar="ID")
    expire.set_defaults(handler=_expire)
    for parser in (listing, expire):
        parser.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")


def _silence_parser(actions: Parsers) -> None:
    silence = actions.add_parser("silence", help="mute matching alerts for a while")
    silence.add_argument("--rule", help="the alert rule, e.g. SoCLow")
    silence.add_argument("--site", type=int, help="the site id")
    silence.add_argument(
        "--match", action="append", default=[], metavar="LABEL=VALUE", help="another matcher"
    )
    silence.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h, 1d")
    silence.add_argument("--comment", required=True, help="why (shown with the silence)")
    silence.add_argument("--by", default="cli", help="who (default: cli)")
    silence.add_argument("--database-url", help="default: CELLECT_DATABASE_URL")
    silence.set_defaults(handler=_silence)


def _list_alerts(args: argparse.Namespace) -> int:
    url = args.database_url or load_settings().database_url
    state: AlertFilter = "all" if args.all else "firing"
    with database(url) as engine, session_factory(engine)() as session:
        found = list(
            all_items(lambda c: alert_page(session=session, state=state, after=c, limit=MAX_LIMIT))
        )
    if args.format == "json":
        print_json(item_json(a) for a in found)
    elif found:
        print_table(ALERT_HEADER, (_alert_row(a) for a in found))
    else:
        print("no alert is firing" if state == "firing" else "no alert is stored")
    return 0


ALERT_HEADER = ("ID", "RULE", "SEVERITY", "STATE", "SITE", "SINCE", "ENDED", "SUMMARY")


def _alert_row(alert: AlertView) -> tuple[object, ...]:
    ended = alert.ends_at.isoformat(timespec="seconds") if alert.ends_at else None
    summary = alert.annotations.get("summary") or alert.annotations.get("description")
    return (alert.id, alert.rule, alert.severity, alert.state, alert.labels.get("site_id"),
            alert.starts_at.isoformat(timespec="seconds"), ended, summary)  # fmt: skip


def _silence_id(text: str) -> int:
    try:
        return parse_silence_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _test(_args: argparse.Namespace) -> int:
    try:
        notifier = Notifier.from_settings(load_settings())
    except NotifierConfigError as exc:
        raise CommandError(str(exc)) from None
    if not notifier.targets:
        raise CommandError(
            "no notification target: set CELLECT_APPRISE_URLS or CELLECT_APPRISE_CONFIG"
        )
    body = "This is a test notification from cellect-monitor. Alerts will arrive like this."
    results = notifier.send_test("cellect-monitor: test notification", body)
    for result in results:
        state = "ok    " if result.ok else "FAILED"
        print(f"{state} {result.label}" + (f"  ({result.error})" if result.error else ""))
    return 0 if all(r.ok for r in results) else 1


def _with_service(args: argparse.Namespace, action: Callable[[SilenceService], T]) -> T:
    """Run `action` on the silences of the configured database, then release it."""
    url = args.database_url or load_settings().database_url
    with database(url) as engine:
        try:
            return action(SilenceService(engine, Clock()))
        except InvalidSilence as exc:
            raise CommandError(f"{exc.field}: {exc}") from None


def _matchers(args: argparse.Namespace) -> dict[str, str]:
    matchers = {"rule": args.rule} if args.rule else {}
    if args.site is not None:
        matchers["site_id"] = str(args.site)
    for item in args.match:
        label, sep, value = item.partition("=")
        if not sep or not label.strip():
            raise CommandError(f"--match {item!r}: expected LABEL=VALUE")
        matchers[label.strip()] = value.strip()
    if not matchers:
        raise CommandError("name what to silence: --rule, --site or --match LABEL=VALUE")
    return matchers


def _silence(args: argparse.Namespace) -> int:
    try:
        spec = SilenceIn(
            matchers=_matchers(args), duration=args.duration, comment=args.comment,
            created_by=args.by,
        )  # fmt: skip
    except ValidationError as exc:
        error = exc.errors()[0]
        option = _OPTIONS.get(str(error["loc"][0]) if error["loc"] else "", "input")
        raise CommandError(f"{option}: {error['msg']}") from None
    silence = _with_service(args, lambda service: service.create(spec))
    print(f"silence {silence.id} until {silence.ends_at.isoformat()}: {silence.matchers}")
    return 0


def _list(args: argparse.Namespace) -> int:
    silences = _with_service(args, SilenceService.active)
    if args.json:
        print(json.dumps([silence_json(s) for s in silences], indent=2))
        return 0
    for s in silences:
        print(f"{s.id}\tuntil {s.ends_at.isoformat()}\t{s.matchers}\t{s.created_by}: {s.comment}")
    if not silences:
        print("no silence in force")
    return 0


def _expire(args: argparse.Namespace) -> int:
    if not _with_service(args, lambda service: service.expire(args.silence_id)):
        raise CommandError(f"no active silence {args.silence_id}")
    print(f"silence {args.silence_id} expired")
    return 0
