"""The webhook secret stays out of what the shipped product prints, its access log on."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from receiver.web.app import WEBHOOK_PATH
from tests.support.product import Product
from tests.support.served_receiver import SECRET, body

pytestmark = pytest.mark.anyio


async def test_the_secret_never_reaches_the_products_output(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`cellect-monitor run` as shipped (access log on, INFO) logs every request, and the
    secret — in the query string, a Bearer or Basic header, right or nearly right — is
    never in its output or its answers."""
    monitor = Product(tmp_path, CELLECT_DATABASE_URL=sqlite_url, CELLECT_WEBHOOK_SECRET=SECRET)
    basic = base64.b64encode(f"cellect:{SECRET}".encode()).decode()
    attempts = [
        ({"token": SECRET}, {}),
        ({"token": f"{SECRET}-nearly"}, {}),
        ({"other": "1", "token": SECRET}, {}),
        ({}, {"Authorization": f"Bearer {SECRET}"}),
        ({}, {"Authorization": f"Basic {basic}"}),
    ]
    try:
        await monitor.start()
        async with httpx.AsyncClient(base_url=monitor.url) as http:
            answers = [
                await http.post(WEBHOOK_PATH, content=body(n + 1), params=params, headers=headers)
                for n, (params, headers) in enumerate(attempts)
            ]
            answers.append(await http.get("/metrics"))
    finally:
        monitor.terminate()
    assert [a.status_code for a in answers] == [200, 401, 200, 200, 200, 200]
    output = monitor.output()
    assert output.count(f"POST {WEBHOOK_PATH}") == len(attempts), "the access log is on"
    assert SECRET not in output
    for answer in answers:
        assert SECRET not in answer.text
