"""Silences through the HTTP API and the CLI, and their effect on the engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from receiver.alerting.engine import AlertEngine
from receiver.alerting.silences import parse_duration
from receiver.cellect.clock import Clock
from receiver.cli import main
from receiver.settings import Settings
from receiver.web.silences import silence_routes
from tests.support.alerting import outbox, site_alert

HOOK_SECRET = "api-S3cret-value"


@pytest.fixture
def client(store: Engine, clock: Clock) -> TestClient:
    return TestClient(Starlette(routes=silence_routes(store, clock)))


def test_parse_duration() -> None:
    """Durations read as 90s, 30m, 2h, 1d, 1h30m; anything else is refused."""
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    for bad in ("", "2", "h", "2x", "-1h", "0m"):
        with pytest.raises(ValueError, match=r"duration|zero"):
            parse_duration(bad)


def test_api_creates_lists_and_expires_a_silence(client: TestClient, clock: Clock) -> None:
    """POST makes a silence in force for its duration, GET lists it, DELETE ends it."""
    body = {"matchers": {"rule": "SoCLow", "site_id": "7"}, "duration": "2h", "comment": "swap"}
    created = client.post("/api/silences", json=body)
    assert created.status_code == 201
    silence = created.json()
    assert silence["ends_at"] == (clock.now() + timedelta(hours=2)).isoformat()
    assert client.get("/api/silences").json()["silences"] == [silence]
    assert client.delete(f"/api/silences/{silence['id']}").status_code == 204
    assert client.get("/api/silences").json()["silences"] == []
    assert client.delete(f"/api/silences/{silence['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"matchers": {}, "duration": "1h", "comment": "x"}, "matchers"),
        ({"matchers": {"rule": "A"}, "duration": "soon", "comment": "x"}, "duration"),
        ({"matchers": {"rule": "A"}, "comment": "x"}, "duration"),
        ({"matchers": {"rule": "A"}, "duration": "1h"}, "comment"),
        ({"matchers": {"rule": "A"}, "ends_at": "2000-01-01T00:00:00Z", "comment": "x"}, "ends_at"),
    ],
)
def test_api_rejects_bad_input_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    """Bad silence input gets 422 with a JSON body naming the field."""
    response = client.post("/api/silences", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_api_silence_mutes_the_engine_and_expiry_unmutes(
    client: TestClient, clock: Clock, store: Engine, settings: Settings
) -> None:
    """A silence made through the API holds an alert back; after it ends the alert is told."""
    route = lambda severity: [HOOK_SECRET]  # noqa: E731 -- a target id, here a would-be secret
    engine = AlertEngine(clock, settings, store, route=route)
    body = {"matchers": {"site_id": "7"}, "duration": "10m", "comment": "works"}
    client.post("/api/silences", json=body)
    engine.evaluate([site_alert("SoCLow", 7)])
    clock.advance(60)
    assert engine.flush() == 0
    clock.advance(600)
    assert engine.flush() == 1
    assert outbox(store)[0].title == "[FIRING:1] SoCLow (warning)"
    assert HOOK_SECRET not in client.get("/api/silences").text


def test_cli_silence_list_expire(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`alerts silence`, `alerts silences` and `alerts expire` manage silences in the database."""
    db = ["--database-url", database_url]
    assert main(["alerts", "silence", "--rule", "SoCLow", "--site", "7", "--for", "2h",
                 "--comment", "battery swap", *db]) == 0  # fmt: skip
    assert main(["alerts", "silences", *db]) == 0
    listing = capsys.readouterr().out
    assert "'site_id': '7'" in listing
    assert "battery swap" in listing
    assert main(["alerts", "expire", "1", *db]) == 0
    assert main(["alerts", "expire", "1", *db]) == 2
    assert main(["alerts", "silences", *db]) == 0
    assert "no silence in force" in capsys.readouterr().out
    assert main(["alerts", "silence", "--for", "2h", "--comment", "x", *db]) == 2
    assert "--rule" in capsys.readouterr().err
