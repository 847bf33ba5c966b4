"""Fixtures of the client tests: the real emulator (through httpx.ASGITransport), a frozen
clock shared by emulator and client, and a recorder of the client's requests and sleeps
(see client_support.py for the doubles at the outer boundaries of time and network).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import SecretStr

from receiver.cellect.clock import Clock
from receiver.emulator.app import create_emulator_app
from receiver.emulator.cloud import Emulator
from receiver.vendor.client import CellectClient
from tests.support.door import Door
from tests.support.vendor import BASE_URL, SITES, START, Control, FlakyNetwork, Recorder


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(START)


@pytest.fixture
def emulator(clock: Clock) -> Emulator:
    return Emulator(sites=SITES, seed=7, clock=clock)


@pytest.fixture
def refresh_token(emulator: Emulator) -> str:
    return emulator.issue_refresh_token()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def door(emulator: Emulator) -> Door:
    """The emulator app, counting the public API requests that reach it."""
    return Door(create_emulator_app(emulator))


@pytest.fixture
def network(door: Door) -> FlakyNetwork:
    return FlakyNetwork(httpx.ASGITransport(app=door))


@pytest.fixture
async def http(network: FlakyNetwork) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=network, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def control(network: FlakyNetwork) -> AsyncIterator[Control]:
    """The control API, reached past the flaky network and the client's request hooks."""
    async with httpx.AsyncClient(transport=network.inner, base_url=BASE_URL) as http:
        yield Control(http)


@pytest.fixture
def make_client(
    http: httpx.AsyncClient, clock: Clock, refresh_token: str, recorder: Recorder
) -> Callable[..., CellectClient]:
    """Build a client on the emulator; keyword arguments override the defaults."""

    def make(**overrides: object) -> CellectClient:
        options: dict[str, object] = {
            "api_url": BASE_URL,
            "token_url": BASE_URL,
            "refresh_token": SecretStr(refresh_token),
            "clock": clock,
            "sleep": recorder.sleep,
            "rng": random.Random(3),
            "on_request": recorder.on_request,
        }
        options.update(overrides)
        return CellectClient(http, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def client(make_client: Callable[..., CellectClient]) -> CellectClient:
    return make_client()
