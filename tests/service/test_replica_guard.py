"""Replicas and the registry, through the shipped `run`: one replica on SQLite, several
on PostgreSQL, a crash never blocks a restart, a graceful stop leaves no row.

A second `run` on a SQLite database another live monitor uses is refused at once with
one line naming that monitor (exit status 2, no traceback, nothing served); killed with
-9, the first one's row does not block a restart on the same host.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.product import ROOT, Product, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _replicas(database_url: str) -> list[tuple[str, int]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, pid FROM replicas ORDER BY id"))
            return [(row[0], row[1]) for row in rows]
    finally:
        engine.dispose()


def _second_run(workdir: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in Product(workdir).env.items() if not k.startswith("CELLECT_")}
    env |= {"CELLECT_DATABASE_URL": database_url, "CELLECT_PORT": str(free_port())}
    return subprocess.run(
        [sys.executable, "-m", "receiver", "run"],
        env={**env, "PYTHONPATH": str(ROOT)}, cwd=workdir, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


async def test_sqlite_means_one_replica_and_a_crash_does_not_block_a_restart(
    sqlite_url: str, tmp_path: Path
) -> None:
    first = Product(tmp_path, CELLECT_DATABASE_URL=sqlite_url)
    await first.start()
    try:
        [(replica, pid)] = _replicas(sqlite_url)
        assert pid == first.pid
        refused = _second_run(tmp_path, sqlite_url)
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert "another cellect-monitor runs on this SQLite database" in lines[0]
        assert f"replica {replica}" in lines[0]
        assert f"pid {first.pid}" in lines[0]
        assert "Traceback" not in refused.stderr
        assert _replicas(sqlite_url) == [(replica, first.pid)]

        first.kill()  # its row stays, its heartbeat fresh: the process is what is gone
        assert _replicas(sqlite_url) == [(replica, first.ended[-1])]
        await first.start()  # at once, beside its own ghost
        rows = _replicas(sqlite_url)
        assert sorted(pid for _, pid in rows) == sorted([first.ended[-1], first.pid])
        assert replica in {row_id for row_id, _ in rows}
    finally:
        first.stop()


async def test_a_graceful_stop_deregisters(sqlite_url: str, tmp_path: Path) -> None:
    monitor = Product(tmp_path, CELLECT_DATABASE_URL=sqlite_url)
    await monitor.start()
    try:
        assert [pid for _, pid in _replicas(sqlite_url)] == [monitor.pid]
        assert monitor.terminate() == 0
        assert _replicas(sqlite_url) == []
    finally:
        monitor.stop()


@pytest.mark.postgres
async def test_postgresql_takes_several_replicas(postgres_url: str, tmp_path: Path) -> None:
    one = Product(tmp_path / "one", CELLECT_DATABASE_URL=postgres_url)
    two = Product(tmp_path / "two", CELLECT_DATABASE_URL=postgres_url)
    for workdir in (one.workdir, two.workdir):
        workdir.mkdir()
    try:
        await one.start()
        await two.start()
        assert sorted(pid for _, pid in _replicas(postgres_url)) == sorted([one.pid, two.pid])
        assert one.terminate() == 0
        assert [pid for _, pid in _replicas(postgres_url)] == [two.pid]
    finally:
        one.stop()
        two.stop()
