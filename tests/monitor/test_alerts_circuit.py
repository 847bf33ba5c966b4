"""End to end: ApiDown while the client's circuit is open, although an open circuit sends
(and so fails) nothing more."""

from __future__ import annotations

import pytest

from receiver.client import CircuitState
from tests.monitor.alerts_stack import alert_stack

pytestmark = pytest.mark.anyio
ALL_FAILING = {"endpoint": "*", "error_rate": 1.0}
FIRING = "[FIRING:1] ApiDown (critical)"
RESOLVED = "[RESOLVED] ApiDown (critical)"


async def test_api_down_fires_while_the_circuit_is_open(database_url: str) -> None:
    """A circuit that opens at the first failure, with an hour's cool-down, sees fewer
    failures than ApiDown counts; ApiDown still fires five minutes after the last success,
    and resolves when the probe finds the API back."""
    settings = {"retry_attempts": 1, "circuit_failure_threshold": 1, "circuit_cooldown_s": 3600}
    async with alert_stack(database_url, **settings) as a:
        client = a.stack.monitor.client
        assert client is not None
        await a.control("POST", "/faults", ALL_FAILING)
        await a.step(60)
        assert client.circuit_state is CircuitState.OPEN
        failed = a.stack.monitor.fleet.view().service.api_consecutive_failures
        for _ in range(5):
            await a.step(60)
        assert [n["title"] for n in a.notes("ApiDown")] == [FIRING]
        assert client.circuit_state is CircuitState.OPEN
        # Nothing went out while open: the failure count did not grow to fire it.
        assert a.stack.monitor.fleet.view().service.api_consecutive_failures == failed

        await a.control("DELETE", "/faults")
        await a.step(3600)
        await a.step(60, "portfolio", "events")
        assert client.circuit_state is CircuitState.CLOSED
        assert [n["title"] for n in a.notes("ApiDown")] == [FIRING, RESOLVED]
