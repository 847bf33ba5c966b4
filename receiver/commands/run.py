"""`cellect-monitor run [--emulator]`: serve the monitor (and, for a demo, the emulator).

With `--emulator` the embedded emulator of the Cellect cloud and boxes runs in the same
process on its own port: the monitor issues itself a refresh token there, points its
client at it, subscribes its own webhook endpoint (with its secret) and turns on the
emulator's demo trader — schedules are posted, executed, implemented or failed, and
webhooks flow, without a Cellect account. `--speed` makes emulated time run faster;
the monitor then reads the same clock, so its intervals and alert timings follow it —
and the timestamps it exports run ahead of a Prometheus' clock, so a demo watched in
Prometheus/Grafana runs at `--speed 1` (docker-compose.yml does). `--emulator-host`
0.0.0.0 lets a container publish the emulator's port (its control API for faults).
`--refresh-token-days` sets the life of the refresh token the monitor is given (a year by
default), so that RefreshTokenExpiring can be seen without waiting a year.

The demo prints a one-time sign-in URL of the console (`/login?code=…`, valid once, for
ten minutes): the one secret the monitor deliberately prints, so that the person who
started the demo is signed in by a click. It is never the admin token; the access log
masks the code like every query value (docs/console.md).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from receiver.alerting.notify.notifier import NotifierConfigError
from receiver.commands import CommandError, demo, load_settings
from receiver.coordination.errors import ReplicaRefused
from receiver.coordination.presence import preflight
from receiver.logsetup import configure_logging
from receiver.runtime.memory import limit_malloc_arenas
from receiver.runtime.serving import bind, run_server, serve_app, url_of
from receiver.service import Monitor
from receiver.settings import Settings
from receiver.storage.engine import DatabaseUrlError, create_engine_for
from receiver.web.app import WEBHOOK_PATH, create_app
from receiver.web.operator_api import AdminCredential

log = logging.getLogger(__name__)
DEMO_SPEED = 60.0
DEMO_REFRESH_TOKEN_DAYS = 365.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="run the monitor (--emulator: with a demo)")
    parser.add_argument("--host", help="address to listen on (CELLECT_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (CELLECT_PORT, 8080)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (CELLECT_DATABASE_URL)")
    demo = parser.add_argument_group("demo with the embedded emulator")
    demo.add_argument("--emulator", action="store_true", help="run the embedded emulator")
    demo.add_argument(
        "--emulator-host",
        default="127.0.0.1",
        help="address the emulator listens on (127.0.0.1; 0.0.0.0 in a container, whose"
        " published port then reaches its control API, which has no authentication)",
    )
    demo.add_argument("--emulator-port", type=int, default=8081, help="its port (8081)")
    demo.add_argument("--sites", type=int, default=5, help="demo sites (5)")
    demo.add_argument("--seed", type=int, default=1, help="demo seed (1)")
    demo.add_argument(
        "--speed", type=float, default=DEMO_SPEED, help=f"emulated s per real s ({DEMO_SPEED:g})"
    )
    demo.add_argument("--outage-rate", type=float, default=1.0, help="random outages/site/day")
    demo.add_argument("--no-demo-trader", action="store_true", help="post no demo schedules")
    demo.add_argument(
        "--refresh-token-days",
        type=float,
        default=DEMO_REFRESH_TOKEN_DAYS,
        metavar="D",
        help="the monitor's refresh token expires D emulated days after start"
        f" ({DEMO_REFRESH_TOKEN_DAYS:g}; below 7 RefreshTokenExpiring fires)",
    )
    parser.set_defaults(handler=run)


def loopback_if_wildcard(url: str) -> str:
    """`url` with a wildcard listen address (0.0.0.0, ::) replaced by loopback: the
    address to *call* a server on that listens everywhere, as the monitor calls its
    emulator (a child process) and the emulator posts webhooks to the monitor."""
    parts = urlsplit(url)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return url  # a name, not an address: callable as it is
    if not address.is_unspecified:
        return url
    loopback = "127.0.0.1" if address.version == 4 else "[::1]"
    return urlunsplit(parts._replace(netloc=f"{loopback}:{parts.port}"))


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    """The settings, with the command's options over the environment."""
    overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("database_url", args.database_url),
            *extra.items(),
        )
        if value is not None
    }
    return load_settings(**overrides)


def _check(args: argparse.Namespace) -> None:
    for name in ("port", "emulator_port"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            raise CommandError(f"--{name.replace('_', '-')} must be between 0 and 65535")
    if args.sites < 1 or args.speed <= 0 or args.outage_rate < 0:
        raise CommandError("--sites must be >= 1, --speed > 0 and --outage-rate >= 0")
    if not 0 < args.refresh_token_days <= 36500:  # also refuses nan
        raise CommandError("--refresh-token-days must be > 0 and <= 36500")


def run(args: argparse.Namespace) -> int:
    _check(args)
    configure_logging()
    limit_malloc_arenas()  # before the first thread (receiver.runtime.memory)
    try:
        if args.emulator:
            run_server(_demo(args))
        else:
            settings = _settings(args)
            _refuse_beside_others(settings)
            run_server(_monitor_only(settings))
    except (DatabaseUrlError, NotifierConfigError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot listen: {exc.strerror or exc}") from None
    return 0


def _refuse_beside_others(settings: Settings) -> None:
    """One clear line, not a start-up traceback, when live replicas forbid this one
    (another on SQLite, or another schema revision); the monitor checks again, under the
    database's write lock, as it registers."""
    engine = create_engine_for(settings.database_url)
    try:
        preflight(engine)
    except ReplicaRefused as exc:
        raise CommandError(str(exc)) from None
    finally:
        engine.dispose()


async def _monitor_only(settings: Settings) -> None:
    sock = bind(settings.host, settings.port)
    url = url_of(sock, settings.host)
    app = create_app(settings)

    def ready() -> None:
        log.info("cellect-monitor listening on %s", url)
        log.info("console: %s/ (sign in with the admin token: cellect-monitor admin token)", url)

    await serve_app(app, sock, ready=ready)


async def _demo(args: argparse.Namespace) -> None:
    token = demo.demo_token()
    async with demo.emulator_process(args, token) as emulator_url:
        emulator_url = loopback_if_wildcard(emulator_url)
        settings = _settings(
            args,
            api_url=emulator_url,
            token_url=emulator_url,
            refresh_token=SecretStr(token),
            refresh_token_expires_at=await demo.token_expiry(emulator_url),
            clock_url=f"{emulator_url}/_emulator/clock",
        )
        sock = bind(settings.host, settings.port)
        url = loopback_if_wildcard(url_of(sock, settings.host))
        app = create_app(settings)
        monitor: Monitor = app.state.monitor
        subscribed: list[asyncio.Task[None]] = []

        def monitor_ready() -> None:
            secret = f"?token={monitor.webhook_secret}" if monitor.webhook_secret else ""
            webhook_url = f"{url}{WEBHOOK_PATH}{secret}"
            subscribed.append(asyncio.create_task(demo.subscribe(emulator_url, webhook_url)))
            log.info("cellect-monitor listening on %s (emulator on %s)", url, emulator_url)
            log.info(
                "Grafana/Prometheus: scrape %s/metrics; emulated time runs x%g", url, args.speed
            )
            admin: AdminCredential = app.state.admin
            code = admin.login_codes.issue(time.time())
            minutes = admin.login_codes.lifetime_s / 60
            # Deliberately printed (docs/console.md): one-time, short-lived, never the token.
            log.info(
                "console: %s/login?code=%s (signs you in once, within %g min)", url, code, minutes
            )

        await serve_app(app, sock, ready=monitor_ready)
        await asyncio.gather(*subscribed, return_exceptions=True)
