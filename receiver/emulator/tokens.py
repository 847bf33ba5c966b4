"""Refresh tokens (the partner dashboard's credentials) and 6-hour JWT access tokens.

A refresh token is issued per partner account with an expiry of the partner's choice
and can be listed (by identifier, never by value) and revoked. Exchanging a valid one
gives an HS256 JWT access token (`sub` = partner id, `iat`, `exp` = iat + 6 h). Every
expiry is judged on the injected Clock, so a test moves time instead of sleeping.

Decisions: the store keeps only a SHA-256 digest of each refresh token; access tokens
are stateless, so revoking a refresh token does not cut short the access tokens it
already gave (as with any JWT). `expire_access_tokens()` (the `expire_tokens` fault)
invalidates every access token issued so far, through a generation claim.

Decision (determinism): given an `rng`, the signing key, generated refresh tokens and
their identifiers and each access token's `jti` are drawn from it, and `iat`/`exp` come
from the emulated clock, so a seeded emulator on a frozen clock issues the same tokens
byte for byte. The emulator is a test double, not a security boundary: anyone who
knows its seed can forge its tokens. Without an rng, `secrets` is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from receiver.cellect.clock import Clock

ACCESS_TOKEN_LIFETIME = timedelta(hours=6)
DEFAULT_REFRESH_LIFETIME = timedelta(days=365)
RESOURCE_TYPES = frozenset({"partner-api"})
_ALGORITHM = "HS256"


@dataclass
class RefreshToken:
    """One refresh token as the dashboard lists it; `digest` stands in for the value."""

    identifier: str
    partner_id: int
    resource_type: str
    created_at: datetime
    expires_at: datetime
    digest: str
    revoked: bool = False

    def usable(self, now: datetime) -> bool:
        return not self.revoked and now < self.expires_at


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenService:
    """Issues, lists, revokes and exchanges refresh tokens; signs and checks access tokens."""

    def __init__(
        self,
        clock: Clock,
        *,
        signing_key: bytes | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._key = signing_key or self._bytes(32)
        self._refresh: dict[str, RefreshToken] = {}
        self._generation = 0

    def issue_refresh_token(
        self,
        partner_id: int,
        *,
        token: str | None = None,
        expires_at: datetime | None = None,
        resource_type: str = "partner-api",
    ) -> tuple[str, RefreshToken]:
        """A new refresh token (its value, shown only now) and its dashboard record."""
        now = self._clock.now()
        value = token or base64.urlsafe_b64encode(self._bytes(32)).rstrip(b"=").decode()
        record = RefreshToken(
            identifier=f"rt_{self._bytes(6).hex()}",
            partner_id=partner_id,
            resource_type=resource_type,
            created_at=now,
            expires_at=expires_at or now + DEFAULT_REFRESH_LIFETIME,
            digest=_digest(value),
        )
        self._refresh[record.identifier] = record
        return value, record

    def _bytes(self, n: int) -> bytes:
        """`n` random bytes: from the seeded rng if there is one, else from `secrets`."""
        return secrets.token_bytes(n) if self._rng is None else self._rng.randbytes(n)

    def refresh_tokens(self, partner_id: int | None = None) -> list[RefreshToken]:
        records = self._refresh.values()
        return [r for r in records if partner_id is None or r.partner_id == partner_id]

    def revoke(self, identifier: str) -> RefreshToken | None:
        """Revoke by identifier; None when no token has that identifier."""
        record = self._refresh.get(identifier)
        if record is not None:
            record.revoked = True
        return record

    def exchange(self, refresh_token: str) -> str | None:
        """A fresh access token for a usable refresh token, else None."""
        digest = _digest(refresh_token)
        now = self._clock.now()
        for record in self._refresh.values():
            if hmac.compare_digest(record.digest, digest) and record.usable(now):
                return self._sign(record.partner_id, now)
        return None

    def _sign(self, partner_id: int, now: datetime) -> str:
        claims = {
            "sub": str(partner_id),
            "iat": int(now.timestamp()),
            "exp": int((now + ACCESS_TOKEN_LIFETIME).timestamp()),
            "gen": self._generation,
            "jti": self._bytes(8).hex(),
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def partner_of(self, access_token: str) -> int | None:
        """The partner id an access token speaks for, or None (bad, expired, expired early)."""
        try:
            # Expiry is checked below against the emulated clock, not the wall clock.
            claims = jwt.decode(
                access_token,
                self._key,
                algorithms=[_ALGORITHM],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            return None
        exp, sub, gen = claims.get("exp"), claims.get("sub"), claims.get("gen")
        if not isinstance(exp, int) or exp <= self._clock.timestamp():
            return None
        if gen != self._generation or not isinstance(sub, str) or not sub.isdigit():
            return None
        return int(sub)

    def expire_access_tokens(self) -> None:
        """Invalidate every access token issued so far (clients must refresh)."""
        self._generation += 1
