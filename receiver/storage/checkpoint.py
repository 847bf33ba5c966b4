"""SQLite's write-ahead log, checkpointed beside the webhook writer rather than in its commits."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)


class Checkpointer(threading.Thread):
    """SQLite only: copies the write-ahead log into the database file beside the writer.

    SQLite checkpoints inside the commit that crosses `wal_autocheckpoint` pages, and
    that commit (with every delivery of its batch) then waits for the copy and a second
    fsync. The writer's connections turn that off; this thread runs a PASSIVE checkpoint
    (it never blocks the writer, and readers never block it) every `every_s` seconds on
    a connection of its own, and once more when the writer stops. Durability is the
    WAL's either way: a commit is on disk once its WAL frames are.
    """

    def __init__(self, engine: Engine, every_s: float = 1.0) -> None:
        super().__init__(name="wal-checkpointer", daemon=True)
        self.engine, self.every_s = engine, every_s
        self._stopping = threading.Event()

    @classmethod
    def for_engine(cls, engine: Engine) -> Checkpointer | None:
        if engine.dialect.name != "sqlite":
            return None

        @event.listens_for(engine, "connect")
        def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        return cls(engine)

    def run(self) -> None:
        while not self._stopping.wait(self.every_s):
            self.checkpoint()
        self.checkpoint()

    def checkpoint(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:  # the next round tries again; the WAL only grows meanwhile
            log.exception("checkpointing the SQLite write-ahead log failed")

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=30)
