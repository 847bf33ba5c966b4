"""The same seed gives the same run, byte for byte, under the frozen clock.

Each run is a complete emulator (random outages, webhook faults, a box cut off and an
outage scripted through the control API) traded by the demo trader through the app for
24 emulated hours, its webhooks delivered to a loopback sink. Between two trader rounds
the clock is advanced in one step or in several uneven ones: how often the boxes are
synced must not change what the API says. Webhooks are batched per sync (and their
timestamps are the sync's), so their sequence is compared between runs with identical
steps.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.types import ASGIApp

from receiver.cellect import paths
from receiver.cellect.clock import Clock
from receiver.cellect.timestamps import format_timestamp
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.emulator.trader import DemoTrader
from receiver.emulator.webhook_sender import WebhookFaults
from tests.support.sinks import HttpSink, RecordedRequest

T0 = datetime(2031, 3, 3, tzinfo=UTC)
SITES = 3
ROUND_S = 1800  # a trader round every half hour ...
ROUNDS = 48  # ... for 24 emulated hours
SIGNING_SECRET = "whsec_" + base64.b64encode(b"determinism-test-secret!").decode()
TRANSPORT_HEADERS = {
    "host", "content-length", "accept", "accept-encoding", "connection", "user-agent",
}  # fmt: skip
FAULTS = WebhookFaults(
    drop_rate=0.1, duplicate_rate=0.2, reorder=True, delay_s=90.0, delay_rate=0.3
)
# Control actions right after the trader's round: (round, method, path, body). Site 2
# is cut off before its first post is transferred: the entries starting offline fail.
ACTIONS = [
    (0, "POST", "/_emulator/sites/2/box", {"online": False}),
    (6, "POST", "/_emulator/sites/2/box", {"online": True}),
    (30, "POST", "/_emulator/sites/1/outages", {"duration_s": 3600}),
]

Steps = Callable[[int], list[int]]


def one_step(_: int) -> list[int]:
    return [ROUND_S]


def uneven_steps(round_no: int) -> list[int]:
    """ROUND_S split into 1-6 uneven whole-second steps, differently in every round."""
    rng = random.Random(round_no)
    cuts = sorted(rng.sample(range(1, ROUND_S), rng.randint(0, 5)))
    edges = [0, *cuts, ROUND_S]
    return [b - a for a, b in itertools.pairwise(edges)]


@dataclass
class Transcript:
    """What a run said: every API exchange, every webhook, the reads at the end."""

    api: list[bytes] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    webhooks: list[bytes] = field(default_factory=list)
    final: dict[str, bytes] = field(default_factory=dict)


class RecordingTransport(httpx.ASGITransport):
    """httpx.ASGITransport that logs every request with its response, as bytes."""

    def __init__(self, app: ASGIApp, transcript: Transcript) -> None:
        super().__init__(app=app)
        self.transcript = transcript

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        body = await response.aread()
        line = f"{request.method} {request.url} {request.content!r} -> {response.status_code} "
        self.transcript.api.append(line.encode() + body)
        if request.url.path == paths.ACCESS_TOKEN and response.status_code == 200:
            self.transcript.access_tokens.append(json.loads(body)["accessToken"])
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def _webhook_bytes(request: RecordedRequest) -> bytes:
    headers = sorted((k, v) for k, v in request.headers.items() if k not in TRANSPORT_HEADERS)
    head = f"{request.method} {request.path}?{request.query} {headers}\n"
    return head.encode() + request.body


async def _final_reads(
    http: httpx.AsyncClient, refresh_token: str, now: datetime
) -> dict[str, bytes]:
    """PortfolioOverview, then each site's events, ExAnte and ExPost, as raw bodies."""
    token = (await http.post(paths.ACCESS_TOKEN, headers={"authorization": refresh_token})).json()
    auth = {"authorization": f"Bearer {token['accessToken']}"}
    reads = {"portfolio": (paths.PORTFOLIO_MASTER_DATA, {"symbol": "PortfolioOverview"})}
    ahead = {
        "startDate": format_timestamp(now),
        "endDate": format_timestamp(now + timedelta(hours=47)),
    }
    past = {"startDate": format_timestamp(T0), "endDate": format_timestamp(now)}
    for site in range(1, SITES + 1):
        reads[f"events {site}"] = (paths.events(site), {"symbol": "Availability"})
        series = paths.time_series(site)
        reads[f"ex-ante {site}"] = (series, {"symbol": "ExAnteInformationEssPowerAC", **ahead})
        reads[f"ex-post {site}"] = (series, {"symbol": "ExPostInformationEssPowerAC", **past})
    out: dict[str, bytes] = {}
    for name, (path, params) in reads.items():
        response = await http.get(path, params=params, headers=auth)
        assert response.status_code == 200, (name, response.text)
        out[name] = response.content
    return out


async def _run(seed: int, steps: Steps) -> Transcript:
    clock = Clock.frozen(T0)
    emulator = Emulator(sites=SITES, seed=seed, clock=clock, outage_rate_per_day=6.0)
    emulator.sender.set_faults(FAULTS)
    refresh_token = emulator.issue_refresh_token()  # generated: drawn from the seed
    transcript = Transcript()
    transport = RecordingTransport(create_emulator_app(emulator), transcript)
    with HttpSink() as sink:
        emulator.subscribe(sink.url("/hook?token=sink-token"), signing_secret=SIGNING_SECRET)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
            trader = DemoTrader(http=http, refresh_token=refresh_token, clock=clock, seed=seed)
            for round_no in range(ROUNDS):
                await trader.step()
                for at, method, path, body in ACTIONS:
                    if at == round_no:
                        assert (await http.request(method, path, json=body)).is_success
                for seconds in steps(round_no):
                    clock.advance(seconds)
                    emulator.sync()
                    await emulator.sender.deliver_due()
            transcript.final = await _final_reads(http, refresh_token, clock.now())
        await emulator.sender.aclose()
        transcript.webhooks = [_webhook_bytes(request) for request in sink.requests]
    return transcript


_RUNS: dict[tuple[int, str], Transcript] = {}


async def run(seed: int, steps: Steps) -> Transcript:
    """A run, computed once per (seed, steps) for the whole module."""
    key = (seed, steps.__name__)
    if key not in _RUNS:
        _RUNS[key] = await _run(seed, steps)
    return _RUNS[key]


def _statuses(transcript: Transcript) -> set[int]:
    bodies = [json.loads(w.split(b"\n", 1)[1]) for w in transcript.webhooks]
    return {entry["status"] for body in bodies for entry in body["schedule"]}


@pytest.mark.anyio
async def test_a_run_exercises_what_determinism_must_cover() -> None:
    """The reference run has outages, failed entries, token refreshes and faulty webhooks."""
    first = await run(1, one_step)
    assert {1, 2, 3, 5} <= _statuses(first)
    assert len(first.access_tokens) >= 4  # the trader refreshes every 5 h, plus the final read
    ids = [w.split(b"'webhook-id', '", 1)[1][:28] for w in first.webhooks]
    assert len(ids) > len(set(ids))  # duplicates were sent
    assert all(json.loads(first.final[f"events {s}"]) for s in range(1, SITES + 1))
    assert b'"eventId":100001' in first.final["events 1"]


@pytest.mark.anyio
async def test_same_seed_and_steps_give_the_same_bytes() -> None:
    """Two runs with one seed and identical steps say the same bytes: API, tokens, webhooks."""
    first, again = await run(1, one_step), await _run(1, one_step)
    assert first.access_tokens == again.access_tokens
    assert first.webhooks == again.webhooks
    assert first.api == again.api
    assert first.final == again.final


@pytest.mark.anyio
async def test_step_sizes_do_not_change_what_the_api_says() -> None:
    """Advancing in uneven steps changes no API answer, token, event id or time series."""
    first, uneven = await run(1, one_step), await run(1, uneven_steps)
    assert first.access_tokens == uneven.access_tokens
    assert first.final == uneven.final
    assert first.api == uneven.api


@pytest.mark.anyio
async def test_another_seed_gives_another_run() -> None:
    """A different seed gives different tokens, webhooks and final state."""
    first, other = await run(1, one_step), await run(2, one_step)
    assert first.access_tokens[0] != other.access_tokens[0]
    assert first.webhooks != other.webhooks
    assert first.final["portfolio"] != other.final["portfolio"]
    assert first.final["events 1"] != other.final["events 1"]
