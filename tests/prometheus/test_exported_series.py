"""Series the dashboards and alert rules rely on, as the assembled monitor exports them."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from receiver.alerting.catalogue import CATALOGUE, THRESHOLD_METRIC, threshold_values
from receiver.settings import Settings
from tests.support.stack import Stack, monitor_stack, until

pytestmark = pytest.mark.anyio
EXPIRY = "cellect_refresh_token_expiry_timestamp_seconds"
POLLING_SERIES = {
    "cellect_poll_interval_seconds",
    "cellect_poll_last_success_timestamp_seconds",
    "cellect_access_token_expiry_timestamp_seconds",
    "cellect_api_credentials_refused",
    "cellect_api_failing_since_timestamp_seconds",
}


async def test_configured_refresh_token_expiry_is_exported(sqlite_url: str) -> None:
    """CELLECT_REFRESH_TOKEN_EXPIRES_AT becomes the refresh-token expiry gauge."""
    expires = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    async with monitor_stack(sqlite_url, refresh_token_expires_at=expires) as stack:
        assert stack.sample(EXPIRY) == expires.timestamp()


async def test_refresh_token_expiry_is_absent_while_unknown(sqlite_url: str) -> None:
    """Without a configured expiry the gauge is absent (not 0, which would mean 1970)."""
    async with monitor_stack(sqlite_url) as stack:
        assert stack.sample(EXPIRY) is None


def test_refresh_token_expiry_setting_needs_a_timezone() -> None:
    """A naive CELLECT_REFRESH_TOKEN_EXPIRES_AT is refused rather than guessed."""
    with pytest.raises(ValueError, match="refresh_token_expires_at"):
        Settings(_env_file=None, refresh_token_expires_at="2026-04-01T12:00:00")


async def test_alert_thresholds_follow_the_settings(sqlite_url: str) -> None:
    """Every threshold the rules read is exported from its setting, changed ones included."""
    async with monitor_stack(sqlite_url, stale_after_s=900.0, failure_hold_s=1800.0) as stack:
        exported = {
            s.name: stack.sample(THRESHOLD_METRIC, rule=s.name)
            for s in CATALOGUE
            if s.exported_threshold
        }
    assert exported == threshold_values(stack.settings)
    assert exported["DataStale"] == 900.0
    assert exported["ImplementationFailed"] == 1800.0
    assert exported["WebhookSilence"] == 3600.0


async def test_webhooks_only_mode_exports_no_poll_or_token_series(sqlite_url: str) -> None:
    """Without a refresh token nothing is polled: no poll interval, poll success, access
    token expiry, credential verdict or API failure series exist (no 0 placeholders)."""
    async with monitor_stack(sqlite_url, refresh_token=None) as stack:
        await stack.advance(600)
        body = (await _metrics(stack)).splitlines()
    present = {line.split("{")[0].split(" ")[0] for line in body if not line.startswith("#")}
    assert present & POLLING_SERIES == set()
    assert "cellect_monitor_start_time_seconds" in present


async def test_a_polling_monitor_exports_its_pollers_and_token(sqlite_url: str) -> None:
    """With a refresh token every poller's interval, its success and the token expiry exist."""
    async with monitor_stack(sqlite_url) as stack:
        await until(lambda: all(p.last_success for p in stack.monitor.pollers), what="polls")
        for poller in ("portfolio", "events", "ex_ante", "ex_post"):
            assert stack.sample("cellect_poll_interval_seconds", poller=poller)
            assert stack.sample("cellect_poll_last_success_timestamp_seconds", poller=poller)
        assert stack.sample("cellect_access_token_expiry_timestamp_seconds")
        assert stack.sample("cellect_api_credentials_refused") == 0


async def _metrics(stack: Stack) -> str:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        return (await http.get("/metrics")).text
