"""`cellect-monitor webhooks url|replay`: the URL to register works; replay re-applies."""

from __future__ import annotations

import os
from datetime import timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete
from sqlmodel import Session

from receiver.cli import main
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange
from tests.support.served_receiver import SECRET, START, body, entry, receiver_app, stamp

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CELLECT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_url_prints_the_configured_secret_in_the_query(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    """The configured secret, URL-quoted, after the public base and the endpoint path."""
    monkeypatch.setenv("CELLECT_WEBHOOK_SECRET", "s3cret/with&odd=chars")
    code = main(["webhooks", "url", "--database-url", sqlite_url,
                 "--public-url", "https://monitor.example.com/"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0
    url = out.out.strip()
    assert url.startswith("https://monitor.example.com/webhooks/time-series?token=")
    assert parse_qs(urlsplit(url).query) == {"token": ["s3cret/with&odd=chars"]}
    assert "s3cret" not in out.err


async def test_url_with_the_generated_secret_is_accepted_by_the_monitor(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """Without a configured secret the printed URL carries the monitor's own; a POST to it works."""
    assert main(["webhooks", "url", "--database-url", database_url]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["webhooks", "url", "--database-url", database_url]) == 0
    assert capsys.readouterr().out.strip() == first
    token = parse_qs(urlsplit(first).query)["token"][0]
    assert len(token) >= 32
    async with receiver_app(database_url, webhook_secret=None) as app:
        assert (await app.post(body(), {}, {"token": token})).status_code == 200
        assert (await app.post(body(), {}, {"token": SECRET})).status_code == 401


async def test_replay_reapplies_stored_deliveries_idempotently(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """Entries lost after ingest come back from the raw deliveries; a second replay is a no-op."""
    async with receiver_app(database_url) as app:
        await app.post(body(1, entry(1, 1), entry(2, 1)))
        await app.post(body(1, entry(1, 2)))
        with Session(app.monitor.database) as session:
            session.exec(delete(ScheduleStatusChange))  # type: ignore[call-overload]
            session.exec(delete(ScheduleEntryRecord))  # type: ignore[call-overload]
            session.commit()
    since = START.astimezone(timezone(timedelta(hours=2))).isoformat()  # shown in UTC
    assert main(["webhooks", "replay", "--since", since, "--database-url", database_url]) == 0
    expected = f"replayed 2 deliveries received since {stamp(START)}: 3 status changes"
    assert capsys.readouterr().out.strip() == expected
    assert main(["webhooks", "replay", "--since", since, "--database-url", database_url]) == 0
    assert capsys.readouterr().out.strip().endswith(": 0 status changes")


def test_replay_refuses_a_naive_since(capsys: pytest.CaptureFixture[str]) -> None:
    """--since without a zone is a usage error (exit 2) naming the option."""
    with pytest.raises(SystemExit) as exit_:
        main(["webhooks", "replay", "--since", "2026-03-02T08:00:00"])
    assert exit_.value.code == 2
    assert "--since" in capsys.readouterr().err
