"""`cellect-monitor db upgrade|prune` through the real CLI entry point."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from receiver.cli import main
from receiver.storage.engine import create_engine_for
from tests.support.history import head_revision


def test_db_upgrade_creates_the_tables(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db upgrade --database-url` exits 0, prints one line and creates every table."""
    assert main(["db", "upgrade", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert f"schema revision {head_revision()}" in out
    engine = create_engine_for(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"sites", "measurements", "schedule_entries", "webhook_deliveries"} <= tables


def test_db_prune_uses_settings_for_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db prune --days N` reads CELLECT_DATABASE_URL when no URL is given."""
    monkeypatch.setenv("CELLECT_DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "prune", "--days", "7"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "pruned history older than 7 days: nothing to delete"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user:hunter2@localhost/db", "invalid database URL"),
        ("postgresql://user:hunter2@127.0.0.1:1/db", "database error: connection failed"),
    ],
)
def test_a_bad_database_url_is_a_one_line_error(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad or unreachable database exits non-zero with one line that hides the password."""
    assert main(["db", "upgrade", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert "hunter2" not in err
