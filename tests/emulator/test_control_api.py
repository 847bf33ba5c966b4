"""The emulator's control API (/_emulator): refresh tokens, webhook subscriptions, clock,
webhook faults, boxes, and 4xx answers naming the field for bad input."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.cellect.timestamps import format_timestamp
from tests.support.emulator_api import NOW, entry, open_api, ts


@pytest.mark.anyio
async def test_issue_refresh_token_with_chosen_value_and_expiry() -> None:
    """A refresh token issued with a value and expiresAt exchanges, and is listed without it."""
    async with open_api() as api:
        body = {
            "resourceType": "partner-api",
            "partnerId": 2,
            "token": "chosen-token-value",
            "expiresAt": ts(60),
        }
        issued = await api.http.post("/_emulator/refresh-tokens", json=body)
        assert issued.status_code == 201
        view = issued.json()
        assert (view["token"], view["partnerId"], view["expiresAt"]) == (body["token"], 2, ts(60))
        listed = await api.http.get("/_emulator/refresh-tokens")
        assert view["identifier"] in [t["identifier"] for t in listed.json()]
        assert "chosen-token-value" not in listed.text
        answer = await api.http.post(
            "/v1/access-token", headers={"Authorization": "chosen-token-value"}
        )
        assert answer.status_code == 200


@pytest.mark.anyio
async def test_webhook_subscription_crud_redacts_secrets() -> None:
    """Subscriptions are created, listed (secrets redacted), updated and deleted."""
    async with open_api() as api:
        body = {"url": "http://127.0.0.1:9/hook?token=topsecret", "signingSecret": "whsec_abc"}
        created = await api.http.post("/_emulator/webhooks", json=body)
        assert created.status_code == 201
        view = created.json()
        assert view["url"] == "http://127.0.0.1:9/hook?token=***"
        assert (view["hasSigningSecret"], view["enabled"], view["partnerId"]) == (True, True, 1)
        listed = await api.http.get("/_emulator/webhooks")
        assert "topsecret" not in listed.text
        assert "whsec_abc" not in listed.text
        updated = await api.http.put(
            f"/_emulator/webhooks/{view['id']}", json={"enabled": False, "signingSecret": None}
        )
        assert updated.status_code == 200
        assert (updated.json()["enabled"], updated.json()["hasSigningSecret"]) == (False, False)
        assert api.emulator.subscriptions[view["id"]].url == body["url"]
        deleted = await api.http.delete(f"/_emulator/webhooks/{view['id']}")
        assert deleted.status_code == 200
        assert (await api.http.get("/_emulator/webhooks")).json() == []
        missing = await api.http.delete(f"/_emulator/webhooks/{view['id']}")
        assert (missing.status_code, missing.json()["field"]) == (404, "id")


@pytest.mark.anyio
async def test_clock_advance_and_speed() -> None:
    """The clock reads UTC ISO-8601; advance_s moves it, speed sets its rate, boxes follow."""
    async with open_api() as api:
        assert (await api.http.get("/_emulator/clock")).json() == {
            "now": format_timestamp(NOW),
            "speed": 0.0,
        }
        assert (await api.store(1, entry(10, 20))).status_code == 200
        moved = await api.http.post("/_emulator/clock", json={"advance_s": 3600, "speed": 0})
        assert moved.json() == {"now": ts(60), "speed": 0.0}
        assert api.emulator.boxes[1].now == NOW.replace(hour=13)
        assert [e.status for e in api.stored()] == [2]


@pytest.mark.anyio
async def test_webhook_faults_are_handed_to_the_sender() -> None:
    """POST /webhook-faults sets the sender's faults, GET shows them."""
    async with open_api() as api:
        body = {"drop_rate": 0.5, "duplicate_rate": 0.25, "reorder": True, "delay_s": 30}
        answer = await api.http.post("/_emulator/webhook-faults", json=body)
        assert answer.status_code == 200
        faults = api.emulator.sender.faults
        assert (faults.drop_rate, faults.duplicate_rate, faults.reorder, faults.delay_s) == (
            0.5,
            0.25,
            True,
            30.0,
        )
        assert (await api.http.get("/_emulator/webhook-faults")).json() == answer.json()


@pytest.mark.anyio
async def test_box_link_and_reporting_controls() -> None:
    """The box control cuts and restores the link and reporting, and shows the state."""
    async with open_api() as api:
        answer = await api.http.post("/_emulator/sites/2/box", json={"online": False})
        assert answer.status_code == 200
        assert (answer.json()["online"], answer.json()["reporting"]) == (False, True)
        assert api.emulator.boxes[2].online is False
        sites = (await api.http.get("/_emulator/sites")).json()
        assert [s["online"] for s in sites] == [True, False, True, True]


TOKENS = "/_emulator/refresh-tokens"
RT = {"resourceType": "partner-api"}
BAD_INPUT: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/_emulator/clock", {}, 400, "advance_s"),
    ("POST", "/_emulator/clock", {"advance_s": -1}, 400, "advance_s"),
    ("POST", "/_emulator/clock", {"speed": "fast"}, 400, "speed"),
    ("POST", "/_emulator/clock", [1], 400, "body"),
    ("POST", "/_emulator/clock", "{oops", 400, "body"),
    ("POST", "/_emulator/clock", {"advance": 5}, 400, "advance"),
    ("POST", "/_emulator/faults", {"endpoint": "nowhere"}, 400, "endpoint"),
    ("POST", "/_emulator/faults", {"error_rate": 1.5}, 400, "error_rate"),
    ("POST", "/_emulator/faults", {"latency_s": "NaN"}, 400, "latency_s"),
    ("POST", "/_emulator/webhook-faults", {"drop_rate": -0.1}, 400, "drop_rate"),
    ("POST", TOKENS, {**RT, "partnerId": "x"}, 400, "partnerId"),
    ("POST", TOKENS, {**RT, "partnerId": 9}, 404, "partnerId"),
    ("POST", TOKENS, {**RT, "expiresAt": "2024-06-01T12:00:00"}, 400, "expiresAt"),
    ("POST", TOKENS, {**RT, "expiresInS": 0}, 400, "expiresInS"),
    ("POST", TOKENS, {**RT, "token": "short"}, 400, "token"),
    ("POST", "/_emulator/webhooks", {}, 400, "url"),
    ("POST", "/_emulator/webhooks", {"url": "ftp://example.org/x"}, 400, "url"),
    ("POST", "/_emulator/webhooks", {"url": "not a url"}, 400, "url"),
    ("POST", "/_emulator/webhooks", {"url": "http://h.example", "enabled": 1}, 400, "enabled"),
    ("PUT", "/_emulator/webhooks/77", {"enabled": False}, 404, "id"),
    ("POST", "/_emulator/sites/99/box", {"online": False}, 404, "siteId"),
    ("POST", "/_emulator/sites/1/box", {}, 400, "online"),
    ("POST", "/_emulator/sites/1/box", {"online": "no"}, 400, "online"),
    ("POST", "/_emulator/sites/1/outages", {"type": "Sometimes"}, 400, "type"),
    ("POST", "/_emulator/sites/1/outages", {"reason": 9}, 400, "reason"),
    ("POST", "/_emulator/sites/1/outages", {"duration_s": -5}, 400, "duration_s"),
    ("DELETE", "/_emulator/sites/1/outages/current", None, 404, "siteId"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD_INPUT)
async def test_bad_control_input_names_the_field(
    method: str, path: str, body: Any, status: int, field: str
) -> None:
    """Bad control input answers 4xx with a JSON body naming the offending field."""
    async with open_api() as api:
        content = body.encode() if isinstance(body, str) else None
        json_body = None if isinstance(body, str) else body
        answer = await api.http.request(method, path, json=json_body, content=content)
        assert answer.status_code == status, answer.text
        assert answer.json()["field"] == field
        assert answer.json()["statusCode"] == status
