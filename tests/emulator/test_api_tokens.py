"""Refresh and access tokens of the emulated API: exchange, expiry and revocation on the
emulated clock (moved forward, never slept)."""

from __future__ import annotations

import jwt
import pytest

from tests.support.emulator_api import REFRESH, open_api

MASTER = "/v1/resources/sites/master-data"
PORTFOLIO = {"symbol": "PortfolioOverview"}


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["Bearer {t}", "bearer {t}", "{t}", "  Bearer   {t}  "])
async def test_refresh_token_accepted_with_or_without_bearer(header: str) -> None:
    """The token service takes `Bearer <token>` and the bare token alike."""
    async with open_api() as api:
        value = header.format(t=REFRESH[1])
        answer = await api.http.post("/v1/access-token", headers={"Authorization": value})
        assert answer.status_code == 200
        assert set(answer.json()) == {"accessToken"}


@pytest.mark.anyio
async def test_access_token_is_a_six_hour_jwt_for_the_partner() -> None:
    """The access token is an HS256 JWT naming the partner, issued now, expiring in 6 h."""
    async with open_api() as api:
        headers = await api.auth(partner=2)
        token = headers["Authorization"].removeprefix("Bearer ")
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["sub"] == "2"
        assert claims["iat"] == int(api.clock.timestamp())
        assert claims["exp"] - claims["iat"] == 6 * 3600


@pytest.mark.anyio
async def test_access_token_expires_after_six_hours() -> None:
    """An access token works until 6 h have passed on the clock, then answers 401."""
    async with open_api() as api:
        headers = await api.auth()
        api.clock.advance(6 * 3600 - 1)
        assert (await api.http.get(MASTER, params=PORTFOLIO, headers=headers)).status_code == 200
        api.clock.advance(1)
        answer = await api.http.get(MASTER, params=PORTFOLIO, headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {
            "statusCode": 401,
            "errorCode": 0,
            "message": answer.json()["message"],
        }
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        fresh = await api.auth()
        assert (await api.http.get(MASTER, params=PORTFOLIO, headers=fresh)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": f"Bearer {REFRESH[1]}"},
        {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "1", "exp": 4102444800}, "another-key-of-32-bytes-length!!")
        },
    ],
)
async def test_resources_need_a_valid_access_token(headers: dict[str, str]) -> None:
    """Missing, malformed, foreign-signed or refresh tokens on a resource answer 401."""
    async with open_api() as api:
        answer = await api.http.get(MASTER, params=PORTFOLIO, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["statusCode"] == 401


@pytest.mark.anyio
async def test_refresh_token_expires_on_the_clock() -> None:
    """A refresh token issued for an hour exchanges until then, and is 30072 after."""
    async with open_api() as api:
        issued = await api.http.post(
            "/_emulator/refresh-tokens",
            json={"resourceType": "partner-api", "partnerId": 1, "expiresInS": 3600},
        )
        assert issued.status_code == 201
        header = {"Authorization": issued.json()["token"]}
        api.clock.advance(3599)
        assert (await api.http.post("/v1/access-token", headers=header)).status_code == 200
        api.clock.advance(1)
        answer = await api.http.post("/v1/access-token", headers=header)
        assert answer.status_code == 401
        assert answer.json()["errorCode"] == 30072


@pytest.mark.anyio
async def test_revoked_refresh_token_no_longer_exchanges() -> None:
    """Revoking a refresh token makes it 30072; its access tokens live on until expiry."""
    async with open_api() as api:
        headers = await api.auth()
        listed = (await api.http.get("/_emulator/refresh-tokens")).json()
        identifier = next(t["identifier"] for t in listed if t["partnerId"] == 1)
        revoked = await api.http.delete(f"/_emulator/refresh-tokens/{identifier}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked"] is True
        answer = await api.http.post("/v1/access-token", headers={"Authorization": REFRESH[1]})
        assert (answer.status_code, answer.json()["errorCode"]) == (401, 30072)
        assert (await api.http.get(MASTER, params=PORTFOLIO, headers=headers)).status_code == 200
        api.clock.advance(6 * 3600)
        assert (await api.http.get(MASTER, params=PORTFOLIO, headers=headers)).status_code == 401


@pytest.mark.anyio
async def test_expire_tokens_fault_invalidates_issued_access_tokens() -> None:
    """The expire_tokens fault ends every access token issued so far; new ones work."""
    async with open_api() as api:
        headers = await api.auth()
        answer = await api.http.post("/_emulator/faults", json={"expire_tokens": True})
        assert answer.status_code == 200
        assert answer.json() == {}
        assert (await api.http.get(MASTER, params=PORTFOLIO, headers=headers)).status_code == 401
        fresh = await api.auth()
        assert (await api.http.get(MASTER, params=PORTFOLIO, headers=fresh)).status_code == 200


@pytest.mark.anyio
async def test_token_values_never_listed() -> None:
    """The refresh-token listing shows identifiers and expiry, never a token's value."""
    async with open_api() as api:
        answer = await api.http.get("/_emulator/refresh-tokens")
        assert answer.status_code == 200
        for token in REFRESH.values():
            assert token not in answer.text
        assert {t["partnerId"] for t in answer.json()} == {1, 2, 3}
        assert all(t["identifier"].startswith("rt_") for t in answer.json())
