"""Store, read back (ExAnte / ExPost) and delete time series through the emulated API."""

from __future__ import annotations

import pytest

from tests.support.emulator_api import STORE_QUERY, entry, open_api, ts

TIME_SERIES = "/v1/resources/sites/1/time-series"


@pytest.mark.anyio
async def test_store_then_read_back_ex_ante() -> None:
    """A stored post answers its id and size, and ExAnte returns its entries InProgress."""
    async with open_api() as api:
        answer = await api.store(1, entry(30, 45, -20), entry(10, 25, 15.5))
        assert answer.status_code == 200
        assert answer.json() == {"postId": 1, "entries": 2}
        results = await api.ex_ante(1, 0, 60)
        first = {"startDate": ts(10), "endDate": ts(25), "essPowerAC": 15.5}
        second = {"startDate": ts(30), "endDate": ts(45), "essPowerAC": -20.0}
        assert results == [
            {**first, "implementationStatus": 1},
            {**second, "implementationStatus": 1},
        ]


@pytest.mark.anyio
async def test_store_path_without_v1_and_bare_token() -> None:
    """The guide's Store path without `/v1` works, with a bare access token too."""
    async with open_api() as api:
        token = (await api.auth())["Authorization"].removeprefix("Bearer ")
        answer = await api.http.post(
            "/resources/sites/1/time-series",
            params=STORE_QUERY,
            json={"data": [entry(10, 20)], "partnerAccountId": 1},
            headers={"Authorization": token},
        )
        assert answer.status_code == 200
        assert len(await api.ex_ante(1, 0, 60)) == 1


@pytest.mark.anyio
async def test_new_post_overwrites_overlapping_future_entries() -> None:
    """A post overlapping stored future entries marks them 5 Overwritten."""
    async with open_api() as api:
        assert (await api.store(1, entry(10, 25), entry(30, 45))).status_code == 200
        assert (await api.store(1, entry(20, 35, 5))).status_code == 200
        results = await api.ex_ante(1, 0, 60)
        statuses = [(r["startDate"], r["implementationStatus"]) for r in results]
        assert statuses == [(ts(10), 5), (ts(20), 1), (ts(30), 5)]


@pytest.mark.anyio
async def test_entries_transfer_and_appear_in_ex_post() -> None:
    """After the clock passes, entries are Implemented and readable as ExPost."""
    async with open_api() as api:
        assert (await api.store(1, entry(10, 25, -20))).status_code == 200
        api.clock.advance(30 * 60)
        params = {
            "symbol": "ExPostInformationEssPowerAC",
            "startDate": ts(0),
            "endDate": ts(29),
        }
        answer = await api.http.get(TIME_SERIES, params=params, headers=await api.auth())
        assert answer.status_code == 200
        [result] = answer.json()["results"]
        assert (result["startDate"], result["implementationStatus"]) == (ts(10), 2)


@pytest.mark.anyio
async def test_ex_ante_window_rules() -> None:
    """ExAnte accepts windows within 48 h (and a little past) and refuses others."""
    async with open_api() as api:
        headers = await api.auth()
        base = {"symbol": "ExAnteInformationEssPowerAC"}
        cases = [((-4, 48 * 60), 200), ((-60, 60), 400), ((0, 48 * 60 + 1), 400)]
        for (start, end), status in cases:
            params = {**base, "startDate": ts(start), "endDate": ts(end)}
            answer = await api.http.get(TIME_SERIES, params=params, headers=headers)
            assert answer.status_code == status, (start, end, answer.text)


@pytest.mark.anyio
async def test_ex_post_needs_past_dates() -> None:
    """ExPost answers for a past window and is 30104 for one reaching into the future."""
    async with open_api() as api:
        headers = await api.auth()
        base = {"symbol": "ExPostInformationEssPowerAC", "startDate": ts(-120)}
        past = await api.http.get(TIME_SERIES, params={**base, "endDate": ts(0)}, headers=headers)
        assert past.status_code == 200
        assert past.json() == {"results": []}
        future = await api.http.get(TIME_SERIES, params={**base, "endDate": ts(1)}, headers=headers)
        assert (future.status_code, future.json()["errorCode"]) == (400, 30104)


@pytest.mark.anyio
async def test_delete_window_marks_entries_deleted() -> None:
    """DELETE over a window marks its not-started entries 4 Deleted and counts them."""
    async with open_api() as api:
        assert (await api.store(1, entry(10, 25), entry(30, 45), entry(60, 75))).status_code == 200
        params = {"startDate": ts(20), "endDate": ts(50)}
        answer = await api.http.delete(TIME_SERIES, params=params, headers=await api.auth())
        assert answer.status_code == 200
        assert answer.json() == {"deleted": 2}
        statuses = [r["implementationStatus"] for r in await api.ex_ante(1, 0, 90)]
        assert statuses == [4, 4, 1]
        again = await api.http.delete(TIME_SERIES, params=params, headers=await api.auth())
        assert (again.status_code, again.json()["errorCode"]) == (404, 30005)


@pytest.mark.anyio
async def test_store_publishes_webhooks_to_the_partners_subscription() -> None:
    """A stored post queues a status webhook for the partner's subscription only."""
    async with open_api() as api:
        api.emulator.subscribe("http://127.0.0.1:9/hook", partner_id=2)
        assert (await api.store(1, entry(10, 25))).status_code == 200
        assert api.emulator.sender.pending == 0
        api.emulator.subscribe("http://127.0.0.1:9/hook", partner_id=1)
        assert (await api.store(1, entry(30, 45))).status_code == 200
        assert api.emulator.sender.pending == 1
