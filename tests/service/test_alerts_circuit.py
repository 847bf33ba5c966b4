"""End to end: ApiDown while the client's circuit is open, although an open circuit sends
(and so fails) nothing more."""

from __future__ import annotations

import pytest

from receiver.vendor.client import CircuitState
from tests.support.alerts_stack import alert_stack

pytestmark = pytest.mark.anyio
ALL_FAILING = {"endpoint": "*", "error_rate": 1.0}
FIRING = "[FIRING:1] ApiDown (critical)"
RESOLVED = "[RESOLVED] ApiDown (critical)"


async def test_api_down_fires_while_the_circuit_is_open(database_url: str) -> None:
    """A circuit that opens at the first failure, with an hour's cool-down, sends nothing
    more; ApiDown still fires five minutes after the last success (the failure that opened
    it stays unanswered), and resolves when the probe finds the API back."""
    settings = {"retry_attempts": 1, "circuit_failure_threshold": 1, "circuit_cooldown_s": 3600}
    async with alert_stack(database_url, **settings) as a:
        client = a.stack.monitor.client
        assert client is not None
        await a.control("POST", "/faults", ALL_FAILING)
        await a.step(60)
        assert client.circuit_state is CircuitState.OPEN
        failing_since = a.stack.monitor.fleet.view().service.api_failing_since
        assert failing_since is not None
        for _ in range(7):  # past five minutes of failing, and group_wait
            await a.step(60)
        assert [n["title"] for n in a.notes("ApiDown")] == [FIRING]
        assert client.circuit_state is CircuitState.OPEN
        # Nothing went out while open: the failures seen before it opened fired it.
        assert a.stack.monitor.fleet.view().service.api_failing_since == failing_since

        await a.control("DELETE", "/faults")
        await a.step(3600)
        await a.step(60, "portfolio", "events")
        assert client.circuit_state is CircuitState.CLOSED
        assert [n["title"] for n in a.notes("ApiDown")] == [FIRING, RESOLVED]
