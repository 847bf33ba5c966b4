"""The assembled monitor's access-token lifecycle against the emulator: renewal across the
6-hour boundary, renewal on a 401, and a revoked refresh token (loud, no retry storm)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.stack import REFRESH_TOKEN, Stack, monitor_stack, until

pytestmark = pytest.mark.anyio
TOKEN_CALLS = "cellect_api_requests_total"


def token_requests(stack: Stack, code: str = "200") -> float:
    return stack.sample(TOKEN_CALLS, endpoint="access_token", code=code) or 0.0


async def all_polled_since(stack: Stack, at: object, *names: str) -> None:
    """Wait (bounded) until every poller (or those named) has succeeded at or after `at`."""
    pollers = [p for p in stack.monitor.pollers if not names or p.name in names]
    await until(
        lambda: all(p.last_success is not None and p.last_success >= at for p in pollers),
        what="every poller to succeed",
    )


async def test_token_is_renewed_across_the_six_hour_boundary(database_url: str) -> None:
    """Past the access token's 6 h lifetime the pollers keep succeeding on a renewed token."""
    async with monitor_stack(database_url, sites=2) as stack:
        await all_polled_since(stack, stack.clock.now())
        first_expiry = stack.sample("cellect_access_token_expiry_timestamp_seconds")
        assert first_expiry == (stack.clock.now() + timedelta(hours=6)).timestamp()
        for _ in range(4):  # 4 × 95 min: the token's 6 h (less the 5 min margin) pass
            await stack.advance(95 * 60)
            await all_polled_since(stack, stack.clock.now())
        assert token_requests(stack) == 2
        renewed = stack.sample("cellect_access_token_expiry_timestamp_seconds")
        assert renewed is not None
        assert first_expiry is not None
        assert renewed > first_expiry
        assert all(p.consecutive_failures == 0 for p in stack.monitor.pollers)


async def test_a_401_renews_the_token_once_and_the_poll_succeeds(database_url: str) -> None:
    """Tokens the vendor forgets early are renewed on the 401, without a failed round."""
    async with monitor_stack(database_url, sites=2) as stack:
        await all_polled_since(stack, stack.clock.now())
        async with stack.emulator_client() as control:
            response = await control.post("/_emulator/faults", json={"expire_tokens": True})
            assert response.status_code == 200
        await stack.advance(60)  # the portfolio and events pollers are due
        await all_polled_since(stack, stack.clock.now(), "portfolio", "events")
        assert token_requests(stack) == 2
        # The 401 and the retried request are one call to the client (httpx's auth
        # flow), so the evidence is the single extra token exchange, and no failure.
        assert all(p.consecutive_failures == 0 for p in stack.monitor.pollers)


async def test_a_revoked_refresh_token_is_loud_and_not_hammered(database_url: str) -> None:
    """A revoked refresh token shows as auth failing, and token requests stay bounded."""
    async with monitor_stack(database_url, sites=3) as stack:
        await all_polled_since(stack, stack.clock.now())
        async with stack.emulator_client() as control:
            listing = (await control.get("/_emulator/refresh-tokens")).json()
            for record in listing:
                revoked = await control.delete(f"/_emulator/refresh-tokens/{record['identifier']}")
                assert revoked.status_code == 200
            await control.post("/_emulator/faults", json={"expire_tokens": True})
        pollers = {p.name: p for p in stack.monitor.pollers}
        for _ in range(10):  # ten minutes, one poll interval at a time
            before = pollers["portfolio"].rounds, pollers["events"].rounds
            await stack.advance(60)
            await until(
                lambda b=before: (
                    (pollers["portfolio"].rounds, pollers["events"].rounds) > b
                    and pollers["portfolio"].rounds > b[0]
                    and pollers["events"].rounds > b[1]
                ),
                what="a portfolio and an events round",
            )
        assert stack.monitor.fleet.view().service.auth_failing
        refused = token_requests(stack, "401")
        # One attempt per minute of cooldown at most, however many pollers and sites ask.
        assert 1 <= refused <= 11, refused
        for name in ("portfolio", "events"):
            assert pollers[name].consecutive_failures >= 9
            assert "rejected" in (pollers[name].last_error or "")
        assert REFRESH_TOKEN not in str([p.last_error for p in stack.monitor.pollers])
