"""Fixtures shared by the emulator tests: a loopback HTTP sink and an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.sinks import HttpSink


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    """A running loopback sink that records what it receives."""
    with HttpSink() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A real httpx client with short timeouts, for sending to loopback peers."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0)) as client:
        yield client
