"""The client's pure timing rules: token expiry from the JWT, Retry-After, backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import jwt

from receiver.cellect.clock import Clock
from receiver.vendor.retry import RetryPolicy, retry_after_s
from receiver.vendor.tokens import token_expiry
from tests.support.vendor import START

# Some key of the vendor's that the client never sees (long enough for HS256).
VENDOR_KEY = "a-signing-key-the-client-never-sees-0123456789"


def test_expiry_is_read_from_the_jwt_without_its_key() -> None:
    """The `exp` claim of a JWT signed with a key we do not know gives the expiry."""
    exp = START + timedelta(hours=6)
    token = jwt.encode({"exp": int(exp.timestamp())}, VENDOR_KEY, algorithm="HS256")
    assert token_expiry(token, issued_at=START) == exp


def test_expired_jwt_still_yields_its_expiry() -> None:
    """A JWT already expired by the wall clock is not refused: the injected clock judges it."""
    exp = datetime(2001, 1, 1, tzinfo=UTC)
    token = jwt.encode({"exp": int(exp.timestamp())}, VENDOR_KEY, algorithm="HS256")
    assert token_expiry(token, issued_at=START) == exp


def test_opaque_token_is_assumed_to_live_six_hours() -> None:
    """A token that is not a JWT (or has no exp) lives the guide's 6 hours from issue."""
    assert token_expiry("opaque-token", issued_at=START) == START + timedelta(hours=6)
    no_exp = jwt.encode({"sub": "1"}, VENDOR_KEY, algorithm="HS256")
    assert token_expiry(no_exp, issued_at=START) == START + timedelta(hours=6)


def test_retry_after_in_seconds() -> None:
    """Retry-After as delta-seconds is taken as is; negative values become 0."""
    clock = Clock.frozen(START)
    assert retry_after_s("7", clock) == 7.0
    assert retry_after_s("-3", clock) == 0.0
    assert retry_after_s(None, clock) is None


def test_retry_after_as_http_date_is_read_against_the_clock() -> None:
    """Retry-After as an HTTP date means the seconds from the injected clock's now to it."""
    clock = Clock.frozen(START)
    assert retry_after_s("Mon, 02 Mar 2026 12:00:42 GMT", clock) == 42.0
    assert retry_after_s("Mon, 02 Mar 2026 11:00:00 GMT", clock) == 0.0


def test_unreadable_retry_after_is_ignored() -> None:
    """A Retry-After that is neither seconds nor a date falls back to the client's backoff."""
    assert retry_after_s("soon", Clock.frozen(START)) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    """Each delay lies in [half, all] of base × 2^(n-1), capped at cap_s."""
    policy = RetryPolicy(attempts=10, max_s=1000, base_s=0.5, cap_s=8.0)
    rng = random.Random(1)
    for attempt in range(1, 9):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        delays = {policy.backoff(attempt, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, so concurrent clients do not retry in step
