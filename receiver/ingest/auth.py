"""Authentication of incoming Cellect webhooks.

Cellect signs nothing, so what a partner can register is a URL carrying a secret: the
receiver accepts the shared secret as `Authorization: Bearer <secret>`, as the password of
HTTP Basic, or as `?token=<secret>`. Optionally every delivery must also carry a Standard
Webhooks HMAC signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`) made with
one of several secrets (rotation). An optional allow-list restricts source addresses.

All comparisons are constant-time over bytes. The signature itself is computed by the
`standardwebhooks` library (`Webhook.sign`); its own `verify` is not used because it reads
the wall clock and raises assorted exceptions on malformed headers, while the monitor must
read its injectable clock (an emulated fleet runs faster than real time) and answer every
malformed header with a clean 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from receiver.cellect.clock import Clock
from receiver.settings import Settings
from receiver.storage.secrets import kept_secret

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SIGNATURE_TOLERANCE_S = 300.0


class WebhookAuthError(Exception):
    """A delivery that may not be accepted: 401 (credentials) or 403 (source)."""

    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.message = message


@dataclass(frozen=True)
class WebhookAuth:
    """What the receiver checks; built once from the settings."""

    secret: bytes | None
    disabled: bool = False
    signing_secrets: tuple[Webhook, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    tolerance_s: float = SIGNATURE_TOLERANCE_S

    @classmethod
    def build(
        cls,
        *,
        secret: str | None,
        disabled: bool = False,
        signing_secrets: Sequence[str] = (),
        allowed: Sequence[str] = (),
    ) -> WebhookAuth:
        if not disabled and not secret:
            raise ValueError("a webhook secret is required unless authentication is disabled")
        try:
            signers = tuple(Webhook(s) for s in signing_secrets)
        except (ValueError, binascii.Error) as exc:
            raise ValueError("a webhook signing secret is not valid base64") from exc
        networks = tuple(ipaddress.ip_network(a.strip(), strict=False) for a in allowed)
        return cls(
            secret=secret.encode() if secret else None,
            disabled=disabled,
            signing_secrets=signers,
            allowed_networks=networks,
        )

    def check_source(self, host: str | None) -> None:
        """403 unless the allow-list is empty or contains the peer address."""
        if not self.allowed_networks:
            return
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            address = None
        if address is None or not any(address in net for net in self.allowed_networks):
            raise WebhookAuthError(403, "forbidden", "source address not allowed")

    def check_credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """401 unless one of the accepted places carries the shared secret."""
        if self.disabled:
            return
        assert self.secret is not None
        offered = _offered_secrets(headers, query)
        # Compare against every offer without stopping early, so timing reveals nothing.
        matched = False
        for candidate in offered:
            matched |= hmac.compare_digest(candidate, self.secret)
        if not matched:
            raise WebhookAuthError(401, "unauthorized", "missing or wrong webhook secret")

    def check_signature(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """401 unless a Standard Webhooks signature of `body` verifies (when configured)."""
        if not self.signing_secrets:
            return
        msg_id = headers.get("webhook-id", "")
        raw_timestamp = headers.get("webhook-timestamp", "")
        signatures = _offered_signatures(headers.get("webhook-signature", ""))
        if not msg_id or not raw_timestamp or not signatures:
            raise WebhookAuthError(401, "unauthorized", "missing webhook signature headers")
        timestamp = _timestamp(raw_timestamp)
        if timestamp is None or abs((now - timestamp).total_seconds()) > self.tolerance_s:
            raise WebhookAuthError(401, "unauthorized", "webhook timestamp outside tolerance")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookAuthError(401, "unauthorized", "body is not UTF-8") from exc
        matched = False
        for signer in self.signing_secrets:
            expected = _signature_bytes(signer.sign(msg_id, timestamp, text))
            for offered in signatures:
                matched |= hmac.compare_digest(expected, offered)
        if not matched:
            raise WebhookAuthError(401, "unauthorized", "no matching webhook signature")


def _offered_secrets(headers: Mapping[str, str], query: Mapping[str, str]) -> list[bytes]:
    offered: list[bytes] = []
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        offered.append(value.strip().encode())
    elif scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        offered.append(decoded.partition(b":")[2])
    token = query.get("token")
    if token:
        offered.append(token.encode())
    return [o for o in offered if o]


def _offered_signatures(header: str) -> list[bytes]:
    found = []
    for part in header.split():
        version, _, encoded = part.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _signature_bytes(signed: str) -> bytes:
    return base64.b64decode(signed.partition(",")[2])


def _timestamp(raw: str) -> datetime | None:
    if not raw.isdigit() or len(raw) > 12:
        return None
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (ValueError, OverflowError, OSError):  # beyond the year 9999
        return None


WEBHOOK_SECRET_NAME = "webhook_secret"


def load_webhook_secret(settings: Settings, engine: Engine, clock: Clock) -> str | None:
    """The configured secret, else the one generated on first start and kept in the DB."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    if settings.webhook_auth_disabled:
        return None
    return kept_secret(engine, clock, WEBHOOK_SECRET_NAME)
