"""`cellect-monitor alerts silence|silences|expire` beside the locked HTTP API: the CLI works
on the database directly, with the API's bounds, and each sees what the other made."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from anyio import to_thread
from prometheus_client import CollectorRegistry

from receiver.cellect.clock import Clock
from receiver.cli import main
from receiver.web.app import create_app
from tests.support.operator_api import AUTH, api_settings
from tests.support.stack import served

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CELLECT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def _silence(database_url: str, *args: str) -> list[str]:
    return ["alerts", "silence", *args, "--comment", "cli test", "--database-url", database_url]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--rule", "A", "--for", "99999999999w"], "--for"),
        (["--rule", "A", "--for", "3000000d"], "--for"),
        (["--rule", "A", "--for", "1" * 400 + "s"], "--for"),
        (["--rule", "A", "--for", "366d"], "--for"),
        (["--rule", "A", "--match", "site_id=3\x07", "--for", "1h"], "--rule/--site/--match"),
        (["--rule", "A", "--match", "bad name=3", "--for", "1h"], "--rule/--site/--match"),
        (["--rule", "A", "--by", "nul\x00", "--for", "1h"], "--by"),
    ],
)
def test_cli_refuses_what_the_api_refuses_in_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], args: list[str], option: str
) -> None:
    """Over a year, huge, or control characters: exit 2, one line naming the option."""
    assert main(_silence(sqlite_url, *args)) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"cellect-monitor: {option}:"), line


@pytest.mark.parametrize("silence_id", ["99999999999999999999", "2147483648", "-1", "²"])
def test_cli_expire_with_an_impossible_id_is_one_line(
    database_url: str, capsys: pytest.CaptureFixture[str], silence_id: str
) -> None:
    """`alerts expire` with an id no silence can have: exit 2 and one line, no traceback."""
    with pytest.raises(SystemExit) as exited:
        main(["alerts", "expire", silence_id, "--database-url", database_url])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "ID" in err
    assert "Traceback" not in err


@asynccontextmanager
async def _monitor_on_the_wall_clock(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The monitor served on loopback, on the wall clock the CLI stamps silences with."""
    app = create_app(api_settings(database_url), clock=Clock(), registry=CollectorRegistry())
    async with served(app) as url, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        yield http


async def test_cli_and_api_silences_are_one_set(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A silence made by the CLI is listed by the API (with the token) and one made by the
    API is listed and expired by the CLI, on the monitor's database."""
    async with _monitor_on_the_wall_clock(database_url) as http:
        made = _silence(database_url, "--site", "3", "--for", "365d", "--by", "ops")
        assert await to_thread.run_sync(main, made) == 0
        capsys.readouterr()
        [listed] = (await http.get("/api/silences")).json()["silences"]
        assert listed["matchers"] == {"site_id": "3"}
        assert listed["created_by"] == "ops"
        body = {"matchers": {"rule": "SoCLow"}, "duration": "2h", "comment": "api"}
        created = (await http.post("/api/silences", json=body)).json()
        listing = ["alerts", "silences", "--json", "--database-url", database_url]
        assert await to_thread.run_sync(main, listing) == 0
        shown = json.loads(capsys.readouterr().out)
        assert [s["id"] for s in shown] == [listed["id"], created["id"]]
        expire = ["alerts", "expire", str(created["id"]), "--database-url", database_url]
        assert await to_thread.run_sync(main, expire) == 0
        after = (await http.get("/api/silences")).json()["silences"]
        assert after == [listed]
