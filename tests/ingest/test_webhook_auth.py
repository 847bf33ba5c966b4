"""Authentication of incoming webhooks: shared secret, Basic, token, HMAC, allow-list."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from receiver.ingest.auth import WebhookAuth, WebhookAuthError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SIGNING = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_SIGNING = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"authorization": "Bearer s3cret"}, {}),
        ({"authorization": "bearer s3cret"}, {}),
        ({"authorization": _basic("cellect", "s3cret")}, {}),
        ({}, {"token": "s3cret"}),
    ],
)
def test_each_accepted_place_of_the_secret_passes(
    headers: dict[str, str], query: dict[str, str]
) -> None:
    """The secret is accepted as Bearer, as the Basic password, or as ?token=."""
    WebhookAuth.build(secret="s3cret").check_credentials(headers, query)


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {}),
        ({"authorization": "Bearer wrong"}, {}),
        ({"authorization": "Bearer s3cret-and-more"}, {}),
        ({"authorization": _basic("s3cret", "x")}, {}),
        ({"authorization": "Basic !!!not-base64"}, {}),
        ({"authorization": "Token s3cret"}, {}),
        ({}, {"token": ""}),
        ({}, {"token": "S3CRET"}),
    ],
)
def test_wrong_or_missing_secret_is_401(headers: dict[str, str], query: dict[str, str]) -> None:
    """Anything but the exact secret in an accepted place is refused with 401."""
    with pytest.raises(WebhookAuthError) as caught:
        WebhookAuth.build(secret="s3cret").check_credentials(headers, query)
    assert caught.value.status == 401
    assert "s3cret" not in caught.value.message


def test_disabled_authentication_accepts_anything() -> None:
    """With authentication explicitly disabled no secret is needed."""
    WebhookAuth.build(secret=None, disabled=True).check_credentials({}, {})


def test_a_secret_is_required_unless_disabled() -> None:
    """Building the receiver's auth without a secret is refused."""
    with pytest.raises(ValueError, match="secret is required"):
        WebhookAuth.build(secret=None)


def _signed(secret: str, body: str, at: datetime, msg_id: str = "msg_1") -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, at, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_signature_from_any_rotated_secret_verifies() -> None:
    """During rotation a delivery signed with either configured secret is accepted."""
    auth = WebhookAuth.build(secret="s", signing_secrets=[SIGNING, OLD_SIGNING])
    body = '{"siteId": 1}'
    auth.check_signature(_signed(SIGNING, body, NOW), body.encode(), NOW)
    auth.check_signature(_signed(OLD_SIGNING, body, NOW), body.encode(), NOW)


@pytest.mark.parametrize("skew_s", [-301, 301, 100_000])
def test_signature_outside_the_tolerance_is_refused(skew_s: int) -> None:
    """A timestamp more than 300 s from the monitor's clock is refused (replay defence)."""
    auth = WebhookAuth.build(secret="s", signing_secrets=[SIGNING])
    body = "{}"
    headers = _signed(SIGNING, body, NOW + timedelta(seconds=skew_s))
    with pytest.raises(WebhookAuthError, match="tolerance"):
        auth.check_signature(headers, body.encode(), NOW)


def test_signature_within_tolerance_follows_the_injected_clock() -> None:
    """The tolerance is measured against the clock given, not the wall clock."""
    auth = WebhookAuth.build(secret="s", signing_secrets=[SIGNING])
    at = datetime(2031, 1, 1, tzinfo=UTC)
    auth.check_signature(_signed(SIGNING, "{}", at + timedelta(seconds=299)), b"{}", at)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b),
        lambda h, b: ({**h, "webhook-signature": "v2," + h["webhook-signature"][3:]}, b),
        lambda h, b: ({**h, "webhook-signature": "garbage"}, b),
        lambda h, b: ({**h, "webhook-signature": "v1,@@@"}, b),
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "12ab"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "253402300800"}, b),  # year 10000
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b),
        lambda h, b: (h, b + b" "),
        lambda h, b: (h, b"\xff\xfe"),
    ],
)
def test_tampered_signatures_are_401(mangle: object) -> None:
    """A changed body, id, timestamp or signature, or malformed headers, give a clean 401."""
    auth = WebhookAuth.build(secret="s", signing_secrets=[SIGNING])
    body = b'{"siteId": 1}'
    headers, sent = mangle(_signed(SIGNING, body.decode(), NOW), body)  # type: ignore[operator]
    with pytest.raises(WebhookAuthError) as caught:
        auth.check_signature(headers, sent, NOW)
    assert caught.value.status == 401


def test_allow_list_admits_members_and_refuses_others() -> None:
    """With an allow-list, only peers inside one of its networks get through (else 403)."""
    auth = WebhookAuth.build(secret="s", allowed=["127.0.0.0/8", "::1"])
    auth.check_source("127.0.0.9")
    auth.check_source("::1")
    for outsider in ("10.0.0.1", None, "not-an-ip"):
        with pytest.raises(WebhookAuthError) as caught:
            auth.check_source(outsider)
        assert caught.value.status == 403
