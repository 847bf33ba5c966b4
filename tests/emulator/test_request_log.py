"""The emulator records each per-site read it served, on its clock, for tests to read."""

from __future__ import annotations

import pytest

from tests.support.emulator_api import open_api

pytestmark = pytest.mark.anyio
EVENTS = {"symbol": "Availability"}


async def test_reads_served_are_listed_per_resource_and_site() -> None:
    async with open_api(sites=3) as api:
        headers = await api.auth()
        assert (
            await api.http.get("/v1/resources/sites/2/events", params=EVENTS, headers=headers)
        ).status_code == 200
        assert (
            await api.http.get("/v1/resources/sites/2/events", params=EVENTS, headers=headers)
        ).status_code == 200
        await api.ex_ante(3, 10, 60)
        refused = await api.http.get(
            "/v1/resources/sites/99/events", params=EVENTS, headers=headers
        )
        assert refused.status_code >= 400
        log = (await api.http.get("/_emulator/requests")).json()
    assert set(log) == {"events", "ExAnteInformationEssPowerAC"}
    assert list(log["events"]) == ["2"]
    assert len(log["events"]["2"]) == 2
    assert log["events"]["2"][0] <= log["events"]["2"][1]
    assert list(log["ExAnteInformationEssPowerAC"]) == ["3"]
