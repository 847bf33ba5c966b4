"""`cellect-monitor admin token`: the configured token, else the one kept in the database —
the very one the monitor's API accepts, whichever of the two starts first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from receiver.cli import main
from tests.support.served_receiver import receiver_app

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CELLECT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def _printed_token(database_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["admin", "token", "--database-url", database_url]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return out.out.strip()


def test_token_prints_the_configured_admin_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    """With CELLECT_ADMIN_TOKEN set, `admin token` prints exactly it, on stdout only."""
    monkeypatch.setenv("CELLECT_ADMIN_TOKEN", "configured-admin-token-0001")
    assert _printed_token(sqlite_url, capsys) == "configured-admin-token-0001"


async def test_the_printed_token_is_generated_once_and_opens_the_api(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """Before the monitor ever ran, `admin token` generates and keeps one; it prints the
    same one again, and the monitor started afterwards accepts it (and no other)."""
    first = _printed_token(database_url, capsys)
    assert len(first) >= 32
    assert _printed_token(database_url, capsys) == first
    async with receiver_app(database_url) as app:
        accepted = await app.http.get("/api/silences", headers={"Authorization": f"Bearer {first}"})
        assert accepted.status_code == 200
        other = {"Authorization": "Bearer configured-admin-token-0001"}
        assert (await app.http.get("/api/silences", headers=other)).status_code == 401


async def test_the_token_the_monitor_generated_is_the_one_printed(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """When the monitor starts first, it generates the token and `admin token` prints it."""
    async with receiver_app(database_url) as app:
        token = _printed_token(database_url, capsys)
        answer = await app.http.get("/api/silences", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


@pytest.mark.parametrize("value", ["short", "has a space in it 0123", "tab\there-0123456789"])
def test_an_unusable_configured_token_is_one_line_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sqlite_url: str,
    value: str,
) -> None:
    """A CELLECT_ADMIN_TOKEN too short or not printable ASCII: exit 2, one line naming the
    variable and not echoing the value."""
    monkeypatch.setenv("CELLECT_ADMIN_TOKEN", value)
    assert main(["admin", "token", "--database-url", sqlite_url]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    [line] = out.err.strip().splitlines()
    assert "CELLECT_ADMIN_TOKEN" in line
    assert value not in line
