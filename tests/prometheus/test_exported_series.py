"""Series the dashboards and alert rules rely on, as the assembled monitor exports them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from receiver.settings import Settings
from tests.support.stack import monitor_stack

pytestmark = pytest.mark.anyio
EXPIRY = "cellect_refresh_token_expiry_timestamp_seconds"


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
