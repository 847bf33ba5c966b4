"""How the client parses list answers (PortfolioOverview, availability events): at once
from the bytes when every item is well formed, item by item — skipping and naming the
bad ones — when not. The emulator answers; the network between rewrites its answers."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import SecretStr

from receiver.cellect.clock import Clock
from receiver.cellect.models import SiteInformation
from receiver.vendor.client import CellectClient
from receiver.vendor.retry import CellectResponseError
from tests.support.door import Door
from tests.support.vendor import BASE_URL, SITES

Rewrite = Callable[[bytes], bytes]
pytestmark = pytest.mark.anyio


class Rewriting(httpx.AsyncBaseTransport):
    """The emulator's answers to the portfolio call, rewritten by `rewrite` on the way."""

    def __init__(self, inner: httpx.AsyncBaseTransport, rewrite: Rewrite) -> None:
        self.inner, self.rewrite = inner, rewrite

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.params.get("symbol") != "PortfolioOverview":
            return response
        body = self.rewrite(await response.aread())
        headers = {"content-type": response.headers.get("content-type", "application/json")}
        return httpx.Response(response.status_code, headers=headers, content=body)


@pytest.fixture
def rewrite() -> list[Rewrite]:
    return [lambda body: body]


@pytest.fixture
async def rewritten_client(
    door: Door, clock: Clock, refresh_token: str, rewrite: list[Rewrite]
) -> AsyncIterator[CellectClient]:
    transport = Rewriting(httpx.ASGITransport(app=door), lambda body: rewrite[0](body))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:

        async def no_sleep(_seconds: float) -> None:
            return None

        yield CellectClient(
            http=http,
            api_url=BASE_URL,
            token_url=BASE_URL,
            refresh_token=SecretStr(refresh_token),
            clock=clock,
            sleep=no_sleep,
            rng=random.Random(3),
        )


def spoil_site(site_id: int) -> Rewrite:
    def spoil(body: bytes) -> bytes:
        items = json.loads(body)
        for item in items:
            if item["siteId"] == site_id:
                item["essSoC"] = "nearly full"
        return json.dumps(items).encode()

    return spoil


async def test_well_formed_portfolio_parses_whole(rewritten_client: CellectClient) -> None:
    sites = await rewritten_client.portfolio_overview()
    assert [type(s) for s in sites] == [SiteInformation] * SITES
    assert sorted(s.site_id for s in sites) == list(range(1, SITES + 1))


async def test_a_malformed_site_is_skipped_and_named_the_others_kept(
    rewritten_client: CellectClient, rewrite: list[Rewrite], caplog: pytest.LogCaptureFixture
) -> None:
    rewrite[0] = spoil_site(2)
    with caplog.at_level(logging.WARNING):
        sites = await rewritten_client.portfolio_overview()
    assert sorted(s.site_id for s in sites) == [i for i in range(1, SITES + 1) if i != 2]
    assert "item 1 malformed (['essSoC'])" in caplog.text


@pytest.mark.parametrize(
    ("body", "why"), [(b"<html>busy</html>", "not JSON"), (b'{"sites": []}', "not a JSON array")]
)
async def test_an_answer_that_is_no_array_is_a_response_error(
    rewritten_client: CellectClient, rewrite: list[Rewrite], body: bytes, why: str
) -> None:
    rewrite[0] = lambda _: body
    with pytest.raises(CellectResponseError, match=why):
        await rewritten_client.portfolio_overview()
