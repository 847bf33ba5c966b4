"""Every error code of the Cellect catalogue, produced by the emulated API over HTTP.

Each case runs against a fresh emulator holding one stored entry; after the rejected
request that entry is still the only one, unchanged, and no refresh token changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from receiver.cellect.errors import CATALOGUE
from tests.support.emulator_api import STORE_QUERY, entry, open_api, ts

Setup = tuple[tuple[str, str, dict[str, Any]], ...]
VALID = {"data": [entry(60, 75)]}
EX_ANTE, EX_POST = "ExAnteInformationEssPowerAC", "ExPostInformationEssPowerAC"


@dataclass(frozen=True)
class Case:
    code: int
    status: int
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content: bytes | None = None
    partner: int | None = 1  # whose access token; None: no Authorization header
    headers: dict[str, str] | None = None  # raw headers instead of an access token
    setup: Setup = ()


def store(code: int, status: int, body: Any = VALID, site: str = "1", **kw: Any) -> Case:
    params = kw.pop("params", STORE_QUERY)
    path = f"/v1/resources/sites/{site}/time-series"
    return Case(code, status, "POST", path, params=params, body=body, **kw)


def read(code: int, status: int, symbol: str, start: str, end: str, **kw: Any) -> Case:
    params = {"symbol": symbol, "startDate": start, "endDate": end}
    return Case(code, status, "GET", "/v1/resources/sites/1/time-series", params=params, **kw)


def delete(code: int, status: int, start: str, end: str, **kw: Any) -> Case:
    params = {"startDate": start, "endDate": end}
    return Case(code, status, "DELETE", "/v1/resources/sites/1/time-series", params=params, **kw)


def fault(endpoint: str) -> Setup:
    return (("POST", "/_emulator/faults", {"endpoint": endpoint, "error_rate": 1.0}),)


def data(**fields: Any) -> dict[str, Any]:
    return {"data": [{**entry(60, 75), **fields}]}


SITE_INFO = {"symbol": "SiteInformation"}
CASES: dict[str, Case] = {
    "30001 get time series fault": read(
        30001, 500, EX_ANTE, ts(0), ts(60), setup=fault("get-time-series")
    ),
    "30003 master data fault": Case(
        30003,
        500,
        "GET",
        "/v1/resources/sites/1/master-data",
        SITE_INFO,
        setup=fault("master-data"),
    ),
    "30003 box offline": Case(
        30003,
        500,
        "GET",
        "/v1/resources/sites/1/master-data",
        SITE_INFO,
        setup=(("POST", "/_emulator/sites/1/box", {"online": False}),),
    ),
    "30004 store on another partner's site": store(30004, 403, site="4"),
    "30004 partnerAccountId of another partner": store(
        30004, 403, body={**VALID, "partnerAccountId": 2}
    ),
    "30004 events of another partner's site": Case(
        30004, 403, "GET", "/v1/resources/sites/4/events", {"symbol": "Availability"}
    ),
    "30005 delete with nothing to delete": delete(30005, 404, ts(300), ts(360)),
    "30006 store fault": store(30006, 500, setup=fault("store-time-series")),
    "30007 blank siteId": store(30007, 400, site="%20"),
    "30007 empty siteId": store(30007, 400, site=""),
    "30007 no siteId segment": Case(
        30007, 400, "POST", "/v1/resources/sites/time-series", STORE_QUERY, VALID
    ),
    "30008 siteId text": store(30008, 400, site="abc"),
    "30008 siteId zero": store(30008, 400, site="0"),
    "30008 siteId negative": store(30008, 400, site="-1"),
    "30008 siteId fraction": store(30008, 400, site="1.5"),
    "30009 no data": store(30009, 400, body={}),
    "30009 body not JSON": Case(
        30009, 400, "POST", "/v1/resources/sites/1/time-series", STORE_QUERY, content=b"{not json"
    ),
    "30010 invalid startDate": store(30010, 400, body=data(startDate="2024-06-01T13:00:00")),
    "30011 no endDate": store(30011, 400, body=data(endDate=None)),
    "30012 invalid endDate": store(30012, 400, body=data(endDate="soon")),
    "30013 no power": store(30013, 400, body=data(essPowerAC="")),
    "30014 power as string": store(30014, 400, body=data(essPowerAC="-10")),
    "30017 no symbol": store(30017, 400, params={}),
    "30018 unknown symbol": store(30018, 400, params={"symbol": "EssPowerDC"}),
    "30019 symbol of another operation": store(30019, 501, params={"symbol": "SiteInformation"}),
    "30021 unknown partnerAccountId": store(30021, 404, body={**VALID, "partnerAccountId": 99}),
    "30042 null partnerAccountId": store(30042, 400, body={**VALID, "partnerAccountId": None}),
    "30043 invalid partnerAccountId": store(30043, 400, body={**VALID, "partnerAccountId": "abc"}),
    "30064 resource type missing": Case(
        30064, 400, "POST", "/_emulator/refresh-tokens", body={"partnerId": 1}
    ),
    "30065 resource type invalid": Case(
        30065,
        400,
        "POST",
        "/_emulator/refresh-tokens",
        body={"resourceType": "ftp", "partnerId": 1},
    ),
    "30069 empty Authorization": Case(
        30069, 400, "POST", "/v1/access-token", headers={"Authorization": "Bearer "}
    ),
    "30072 unknown refresh token": Case(
        30072, 401, "POST", "/v1/access-token", headers={"Authorization": "Bearer nope-nope"}
    ),
    "30072 no Authorization": Case(30072, 401, "POST", "/v1/access-token", partner=None),
    "30078 access token fault": Case(
        30078,
        500,
        "POST",
        "/v1/access-token",
        headers={"Authorization": "refresh-token-partner-1"},
        setup=fault("access-token"),
    ),
    "30082 identifier blank": Case(30082, 400, "DELETE", "/_emulator/refresh-tokens/%20"),
    "30082 identifier missing": Case(30082, 400, "DELETE", "/_emulator/refresh-tokens"),
    "30083 identifier unknown": Case(30083, 400, "DELETE", "/_emulator/refresh-tokens/rt_unknown"),
    "30085 unknown site": store(30085, 404, site="999"),
    "30086 partner without sites": Case(
        30086,
        404,
        "GET",
        "/v1/resources/sites/master-data",
        {"symbol": "PortfolioOverview"},
        partner=3,
    ),
    "30087 master data of another partner's site": Case(
        30087, 404, "GET", "/v1/resources/sites/4/master-data", SITE_INFO
    ),
    "30088 overlapping entries": store(30088, 400, body={"data": [entry(60, 90), entry(75, 100)]}),
    "30089 query start after end": read(30089, 400, EX_POST, ts(-60), ts(-120)),
    "30089 delete start after end": delete(30089, 400, ts(180), ts(120)),
    "30090 delete fault": delete(30090, 500, ts(0), ts(300), setup=fault("delete-time-series")),
    "30091 starts too soon": store(30091, 400, body={"data": [entry(4, 30)]}),
    "30092 beyond 48 hours": store(30092, 400, body={"data": [entry(60, 48 * 60 + 1)]}),
    "30092 ExAnte beyond 48 hours": read(30092, 400, EX_ANTE, ts(0), ts(49 * 60)),
    "30103 start after end": store(30103, 400, body={"data": [entry(75, 60)]}),
    "30104 ExPost not in the past": read(30104, 400, EX_POST, ts(-60), ts(60)),
    "30113 charge above rated": store(30113, 400, body={"data": [entry(60, 75, -100_000)]}),
    "30114 discharge above rated": store(30114, 400, body={"data": [entry(60, 75, 100_000)]}),
}


def test_every_catalogue_code_has_a_case() -> None:
    """The table reaches every one of the catalogue's 38 codes."""
    assert {case.code for case in CASES.values()} == set(CATALOGUE)


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(CASES))
async def test_error_code(name: str) -> None:
    """The request answers the code's status and body, and changes nothing."""
    case = CASES[name]
    async with open_api() as api:
        assert (await api.store(1, entry(120, 180, -5))).status_code == 200
        before = [(e.entry_id, e.status, e.power_kw) for e in api.stored()]
        tokens_before = [(t.identifier, t.revoked) for t in api.emulator.tokens.refresh_tokens()]
        for method, path, body in case.setup:
            assert (await api.http.request(method, path, json=body)).status_code == 200
        headers = case.headers
        if headers is None:
            headers = await api.auth(case.partner) if case.partner else {}
        answer = await api.http.request(
            case.method,
            case.path,
            params=case.params,
            json=case.body,
            content=case.content,
            headers=headers,
        )
        assert answer.status_code == case.status, answer.text
        body = answer.json()
        assert body["errorCode"] == case.code
        assert body["statusCode"] == case.status
        assert isinstance(body["message"], str)
        assert body["message"]
        assert [(e.entry_id, e.status, e.power_kw) for e in api.stored()] == before
        tokens_after = [(t.identifier, t.revoked) for t in api.emulator.tokens.refresh_tokens()]
        assert tokens_after == tokens_before


@pytest.mark.anyio
async def test_validation_error_lists_every_violation() -> None:
    """A rejected post answers its first violation and lists all of them under `errors`."""
    async with open_api() as api:
        body = {"data": [entry(60, 75, "x"), entry(4, 30), entry(90, 80)]}
        answer = await api.http.post(
            "/v1/resources/sites/1/time-series",
            params=STORE_QUERY,
            json=body,
            headers=await api.auth(),
        )
        assert answer.status_code == 400
        payload = answer.json()
        codes = [error["code"] for error in payload["errors"]]
        assert payload["errorCode"] == codes[0] == 30014
        assert payload["field"] == "data[0].essPowerAC"
        assert {30014, 30091, 30103} <= set(codes)
        assert api.stored() == []
