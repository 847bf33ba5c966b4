"""LISTEN cellect_leases: a hand-over wakes the other replicas at once, not at their next round.

The listener holds one dedicated psycopg connection (autocommit, outside the engine's
pool) that does nothing but LISTEN. It is only an accelerator: a lost notification, a
dropped connection or a pooler in front of PostgreSQL that cannot carry LISTEN slows a
hand-over down to the renewal interval, never makes it wrong; the lease rows decide.

Why not a session advisory lock on such a connection instead of lease rows? An advisory
lock belongs to a server session, not to a row anyone can read: behind a connection
pooler in transaction mode (PgBouncer and the like) the session is handed to other
clients between transactions, so the lock is held for the wrong client or silently lost,
and nothing tells a write made after the loss that it is no longer covered. A lease row
with an epoch is judged inside each writing transaction (`leases.fence`), through any
pooler, and is visible to operators.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL

from receiver.coordination.leases import CHANNEL
from receiver.runtime import waiting

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def conninfo_of(url: URL) -> str:
    """A libpq URI for psycopg from the engine's SQLAlchemy URL (driver name dropped)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Calls `on_notify(payload)` for each NOTIFY on `channel` (`cellect_leases` unless
    told), and `on_notify("")` after each (re)connection, when notifications may have
    been missed."""

    def __init__(
        self,
        conninfo: str,
        on_notify: Callable[[str], None],
        *,
        retry_s: float = 5.0,
        poll_s: float = 0.5,
        channel: str = CHANNEL,
    ) -> None:
        self.channel = channel
        self._conninfo, self._on_notify = conninfo, on_notify
        self._retry_s, self._poll_s = retry_s, poll_s
        self.listening = asyncio.Event()  # set while LISTEN is in effect
        self._failing = False

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, reconnecting after `retry_s` when the connection fails."""
        # Imported here: only a monitor on PostgreSQL listens, and psycopg's ~70 modules
        # cost a monitor on SQLite ~8 MB of memory for nothing (bench/metrics.py).
        driver = importlib.import_module("psycopg")
        while not stop.is_set():
            try:
                await self._listen(driver, stop)
            except (driver.Error, OSError) as exc:
                if not self._failing:
                    log.warning("LISTEN %s failed (it waits for its rounds): %s", self.channel, exc)
                self._failing = True
            finally:
                self.listening.clear()
            await waiting.pause(self._retry_s, stop)

    async def _listen(self, driver: ModuleType, stop: asyncio.Event) -> None:
        connection: psycopg.AsyncConnection[object]
        connection = await driver.AsyncConnection.connect(self._conninfo, autocommit=True)
        async with connection:
            await connection.execute(f"LISTEN {self.channel}")
            self.listening.set()
            if self._failing:
                log.info("LISTEN %s recovered", self.channel)
            self._failing = False
            self._on_notify("")
            while not stop.is_set():
                # A bounded wait, so a stop is seen within `poll_s`; notifications that
                # arrive in between are kept by psycopg for the next call.
                async for notice in connection.notifies(timeout=self._poll_s):
                    self._on_notify(notice.payload)
