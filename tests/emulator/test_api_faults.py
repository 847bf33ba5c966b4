"""API fault injection: 5xx errors, 429 with Retry-After, dropped connections, latency,
per-endpoint rules, determinism for a seed, and clearing."""

from __future__ import annotations

import time

import httpx
import pytest

from receiver.emulator.faults import DroppedConnection, endpoint_of
from tests.support.emulator_api import STORE_QUERY, entry, open_api

MASTER = ("/v1/resources/sites/master-data", {"symbol": "PortfolioOverview"})


@pytest.mark.anyio
async def test_rate_limit_answers_429_with_retry_after() -> None:
    """rate_limit_rate 1 answers 429 with the configured Retry-After, as a JSON error."""
    async with open_api() as api:
        headers = await api.auth()
        rule = {"endpoint": "master-data", "rate_limit_rate": 1.0, "retry_after_s": 7}
        assert (await api.http.post("/_emulator/faults", json=rule)).status_code == 200
        answer = await api.http.get(MASTER[0], params=MASTER[1], headers=headers)
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "7"
        assert answer.json()["statusCode"] == 429
        # Another endpoint has no rule of its own and no "*" rule: unaffected.
        assert (await api.http.post("/v1/access-token", headers=headers)).status_code == 401


@pytest.mark.anyio
async def test_wildcard_rule_and_clearing() -> None:
    """A "*" rule hits every endpoint without its own rule; DELETE clears all rules."""
    async with open_api() as api:
        await api.http.post("/_emulator/faults", json={"endpoint": "*", "error_rate": 1.0})
        answer = await api.http.post("/v1/access-token", headers={"Authorization": "x" * 10})
        assert (answer.status_code, answer.json()["errorCode"]) == (500, 30078)
        cleared = await api.http.delete("/_emulator/faults")
        assert cleared.json() == {}
        assert (
            await api.http.get(MASTER[0], params=MASTER[1], headers=await api.auth())
        ).is_success


@pytest.mark.anyio
async def test_dropped_connection_after_processing() -> None:
    """drop_rate 1 processes the post, then cuts the connection: stored, but unanswered."""
    async with open_api() as api:
        headers = await api.auth()
        await api.http.post(
            "/_emulator/faults", json={"endpoint": "store-time-series", "drop_rate": 1.0}
        )
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await api.http.post(
                "/v1/resources/sites/1/time-series",
                params=STORE_QUERY,
                json={"data": [entry(10, 20)]},
                headers=headers,
            )
        assert isinstance(caught.value, DroppedConnection)
        assert len(api.stored()) == 1


@pytest.mark.anyio
async def test_latency_delays_the_answer() -> None:
    """latency_s delays each answer of the endpoint by that many real seconds."""
    async with open_api() as api:
        headers = await api.auth()
        await api.http.post("/_emulator/faults", json={"endpoint": "master-data", "latency_s": 0.2})
        started = time.monotonic()
        answer = await api.http.get(MASTER[0], params=MASTER[1], headers=headers)
        assert answer.status_code == 200
        assert time.monotonic() - started >= 0.2


async def _outcomes(seed: int) -> list[int]:
    async with open_api(seed=seed) as api:
        headers = await api.auth()
        await api.http.post("/_emulator/faults", json={"endpoint": "*", "error_rate": 0.5})
        return [
            (await api.http.get(MASTER[0], params=MASTER[1], headers=headers)).status_code
            for _ in range(40)
        ]


@pytest.mark.anyio
async def test_faults_are_deterministic_for_a_seed() -> None:
    """The same seed gives the same sequence of faulty and healthy answers."""
    first, again = await _outcomes(7), await _outcomes(7)
    assert first == again
    assert set(first) == {200, 500}


@pytest.mark.anyio
async def test_control_api_is_never_faulty() -> None:
    """Fault rules never touch the /_emulator control API."""
    async with open_api() as api:
        await api.http.post("/_emulator/faults", json={"error_rate": 1.0, "drop_rate": 1.0})
        assert (await api.http.get("/_emulator/clock")).status_code == 200


def test_endpoint_names_of_requests() -> None:
    """Requests map to fault endpoint names, with and without /v1; others to None."""
    assert endpoint_of("POST", "/v1/access-token") == "access-token"
    assert endpoint_of("POST", "/resources/sites/3/time-series") == "store-time-series"
    assert endpoint_of("DELETE", "/v1/resources/sites/3/time-series") == "delete-time-series"
    assert endpoint_of("GET", "/v1/resources/sites/3/time-series") == "get-time-series"
    assert endpoint_of("GET", "/v1/resources/sites/master-data") == "master-data"
    assert endpoint_of("GET", "/v1/resources/sites/3/events") == "events"
    assert endpoint_of("GET", "/_emulator/clock") is None
