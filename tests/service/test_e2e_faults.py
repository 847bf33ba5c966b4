"""The assembled monitor under injected vendor faults: bounded backoff on 5xx and 429,
recovery once the faults stop, an hour of mixed faults survived, and /readyz telling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlmodel import Session, func, select

from receiver.storage.tables import Measurement
from tests.support.stack import Stack, monitor_stack, until

pytestmark = pytest.mark.anyio
REQUESTS = "cellect_api_requests_total"


async def advance_until(
    stack: Stack, condition: Callable[[], Any], *, step: float, max_steps: int, what: str
) -> int:
    """Advance the clock `step` at a time until `condition` holds; returns the steps taken."""
    for taken in range(1, max_steps + 1):
        await stack.advance(step)
        for _ in range(20):  # let the woken rounds run (bounded, real time)
            if condition():
                return taken
            await asyncio.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {max_steps} steps of {step} s")


def poller(stack: Stack, name: str) -> Any:
    return next(p for p in stack.monitor.pollers if p.name == name)


async def fault(stack: Stack, **rule: Any) -> None:
    async with stack.emulator_client() as control:
        response = await control.post("/_emulator/faults", json=rule)
        assert response.status_code == 200, response.text


async def clear_faults(stack: Stack) -> None:
    async with stack.emulator_client() as control:
        assert (await control.delete("/_emulator/faults")).status_code == 200


async def all_succeed_after(stack: Stack, since: datetime) -> None:
    """Advance past the longest interval until every poller has succeeded after `since`."""
    await advance_until(
        stack,
        lambda: all(p.last_success and p.last_success > since for p in stack.monitor.pollers),
        step=150,
        max_steps=10,
        what="every poller succeeding",
    )


async def test_5xx_are_retried_with_backoff_then_the_round_fails_and_recovers(
    database_url: str,
) -> None:
    """Under 5xx each call is tried `retry_attempts` times; the poller recovers after."""
    async with monitor_stack(database_url, sites=2, retry_attempts=3) as stack:
        portfolio = poller(stack, "portfolio")
        await until(lambda: portfolio.last_success, what="first poll")
        first_success = portfolio.last_success
        await fault(stack, endpoint="master-data", error_rate=1.0)
        await advance_until(
            stack, lambda: portfolio.consecutive_failures, step=5, max_steps=40, what="a failure"
        )
        assert stack.sample(REQUESTS, endpoint="portfolio_overview", code="500") == 3
        assert "gave up after 3 attempt(s)" in (portfolio.last_error or "")
        await advance_until(
            stack,
            lambda: portfolio.consecutive_failures >= 2,
            step=20,
            max_steps=40,
            what="a second failure",
        )
        assert portfolio.last_success == first_success
        await clear_faults(stack)
        recovered_from = stack.clock.now()
        await all_succeed_after(stack, recovered_from)
        assert portfolio.consecutive_failures == 0


async def test_429_retry_after_is_honoured_on_the_clock(database_url: str) -> None:
    """A 429's Retry-After is waited out on the monitor's clock before the next attempt."""
    async with monitor_stack(database_url, sites=1, retry_attempts=3) as stack:
        portfolio = poller(stack, "portfolio")
        await until(lambda: portfolio.last_success, what="first poll")
        await fault(stack, endpoint="master-data", rate_limit_rate=1.0, retry_after_s=4)
        await stack.advance(60)
        await until(
            lambda: stack.sample(REQUESTS, endpoint="portfolio_overview", code="429") == 1,
            what="the first 429",
        )
        # Two waits of 4 s between three attempts: no give-up before 8 s of the clock.
        steps = await advance_until(
            stack, lambda: portfolio.consecutive_failures, step=1, max_steps=30, what="give-up"
        )
        assert steps >= 8
        assert stack.sample(REQUESTS, endpoint="portfolio_overview", code="429") == 3
        await clear_faults(stack)
        await all_succeed_after(stack, stack.clock.now())


async def test_an_hour_of_injected_faults_is_survived(database_url: str) -> None:
    """After an emulated hour of 5xx, 429 and dropped connections, every poller recovers."""
    async with monitor_stack(database_url, sites=3) as stack:
        await until(lambda: all(p.last_success for p in stack.monitor.pollers), what="polls")
        await fault(stack, error_rate=0.4, rate_limit_rate=0.2, retry_after_s=2, drop_rate=0.1)
        for _ in range(120):  # 3600 s in steps of 30 s
            await stack.advance(30)
            await asyncio.sleep(0.01)
        failed = sum(
            stack.sample(REQUESTS, endpoint="availability", code=c) or 0
            for c in ("500", "429", "error")
        )
        assert failed > 0
        await clear_faults(stack)
        await all_succeed_after(stack, stack.clock.now())
        with Session(stack.monitor.database) as session:
            measured = session.exec(select(func.count()).select_from(Measurement)).one()
        assert measured > 3 * 10  # the portfolio kept being recorded through the hour
        async with httpx.AsyncClient(base_url=stack.url) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200


async def test_readyz_turns_503_when_a_poller_is_overdue(database_url: str) -> None:
    """/readyz is 200 while polls succeed, 503 naming the overdue poller, 200 again after."""
    async with monitor_stack(database_url, sites=1, retry_attempts=1) as stack:
        await until(lambda: all(p.last_success for p in stack.monitor.pollers), what="polls")
        async with httpx.AsyncClient(base_url=stack.url) as http:
            assert (await http.get("/readyz")).status_code == 200
            await fault(stack, endpoint="master-data", error_rate=1.0)
            await advance_until(
                stack,
                lambda: poller(stack, "portfolio").overdue,
                step=30,
                max_steps=12,
                what="the portfolio poller overdue",
            )
            answer = await http.get("/readyz")
            assert answer.status_code == 503
            body = answer.json()
            assert body["database"] is True
            assert body["pollers"]["portfolio"]["overdue"] is True
            assert body["pollers"]["events"]["overdue"] is False
            await clear_faults(stack)
            await all_succeed_after(stack, stack.clock.now())
            assert (await http.get("/readyz")).status_code == 200
