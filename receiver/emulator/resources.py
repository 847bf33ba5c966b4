"""The endpoints of the emulated Partner API: access token, time series, master data, events.

Each endpoint checks, in order, the access token, the siteId, the symbol, the site and
its owner, then its body or query (the decisions are listed in receiver.emulator.app),
and only then touches the emulator: a rejected request changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.cellect import errors
from receiver.cellect.enums import Symbol
from receiver.cellect.models import AccessTokenResponse, TimeSeriesResult
from receiver.cellect.timestamps import parse_timestamp
from receiver.cellect.validation import (
    SiteRatings,
    Violation,
    Window,
    validate_schedule,
    validate_time_series_query,
)
from receiver.emulator.cloud import Emulator
from receiver.emulator.params import (
    authorized_partner,
    bearer,
    json_body,
    owned_site,
    site_id_of,
    symbol_of,
    violation_response,
)
from receiver.emulator.state import StoredEntry

STORE = frozenset({Symbol.ESS_POWER_AC})
READ = frozenset({Symbol.EX_ANTE, Symbol.EX_POST})
SITE_MASTER = frozenset({Symbol.SITE_INFORMATION})
PORTFOLIO = frozenset({Symbol.PORTFOLIO_OVERVIEW, Symbol.SITE_INFORMATION})
EVENTS = frozenset({Symbol.AVAILABILITY})


def _result(entry: StoredEntry) -> dict[str, object]:
    return TimeSeriesResult(
        start_date=entry.start,
        end_date=entry.end,
        ess_power_ac=entry.power_kw,
        implementation_status=entry.status,
    ).wire()


def _query_date(
    request: Request, name: str, codes: tuple[int, int], out: list[Violation]
) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        out.append(Violation(codes[0], f"query.{name}", f"{name} is required"))
        return None
    moment = parse_timestamp(raw)
    if moment is None:
        message = f"{name} must be an ISO-8601 UTC timestamp"
        out.append(Violation(codes[1], f"query.{name}", message))
    return moment


def delete_window(request: Request) -> tuple[Window | None, list[Violation]]:
    """The startDate/endDate of a delete: required, UTC, start before end (30089)."""
    out: list[Violation] = []
    start = _query_date(request, "startDate", (30009, 30010), out)
    end = _query_date(request, "endDate", (30011, 30012), out)
    if start is not None and end is not None and start >= end:
        out.append(Violation(30089, "query.startDate", "startDate must be before endDate"))
    if out or start is None or end is None:
        return None, out
    return Window(start, end), out


class Resources:
    """The public endpoints, bound to one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def access_token(self, request: Request) -> Response:
        token = bearer(request)
        if token is None:
            raise errors.InvalidRefreshToken("no Authorization header with a refresh token")
        if not token:
            raise errors.RefreshTokenNotFound("the Authorization header carries no refresh token")
        access = self.emulator.tokens.exchange(token)
        if access is None:
            raise errors.InvalidRefreshToken("the refresh token is unknown, expired or revoked")
        return JSONResponse(AccessTokenResponse(access_token=access).wire())

    def _partner_account(self, partner_id: int, account: int | None) -> None:
        if account is None:
            return
        if account not in self.emulator.portfolio.partners:
            raise errors.PartnerAccountNotFound(f"partner account {account} does not exist")
        if account != partner_id:
            raise errors.InvalidSiteOwnership("partnerAccountId is not your partner account")

    async def store(self, request: Request) -> Response:
        emulator = self.emulator
        partner = authorized_partner(emulator, request)
        site_id = site_id_of(request)
        symbol_of(request, STORE)
        spec = owned_site(emulator, partner, site_id, foreign=errors.InvalidSiteOwnership)
        body = await json_body(request)
        ratings = SiteRatings(spec.rated_charge_kw, spec.rated_discharge_kw)
        result = validate_schedule(body, ratings, emulator.clock.now())
        if not result.ok:
            return violation_response(result.violations)
        self._partner_account(partner, result.partner_account_id)
        post_id = emulator.store(site_id, result.entries)
        return JSONResponse({"postId": post_id, "entries": len(result.entries)})

    async def delete(self, request: Request) -> Response:
        emulator = self.emulator
        partner = authorized_partner(emulator, request)
        site_id = site_id_of(request)
        symbol_of(request, STORE, default=Symbol.ESS_POWER_AC)
        owned_site(emulator, partner, site_id, foreign=errors.InvalidSiteOwnership)
        window, violations = delete_window(request)
        if window is None:
            return violation_response(violations)
        deleted = emulator.delete(site_id, window.start, window.end)
        if not deleted:
            raise errors.TimeSeriesStatusNotFound("no entry to delete in this window")
        return JSONResponse({"deleted": deleted})

    async def read(self, request: Request) -> Response:
        emulator = self.emulator
        partner = authorized_partner(emulator, request)
        site_id = site_id_of(request)
        symbol = symbol_of(request, READ)
        owned_site(emulator, partner, site_id, foreign=errors.InvalidSiteOwnership)
        query = request.query_params
        window, violations = validate_time_series_query(
            symbol, query.get("startDate"), query.get("endDate"), emulator.clock.now()
        )
        if window is None:
            return violation_response(violations)
        entries = emulator.box(site_id).entries_between(window.start, window.end)
        emulator.requests.served(site_id, symbol.value, emulator.clock.now())
        return JSONResponse({"results": [_result(entry) for entry in entries]})

    async def site_master(self, request: Request) -> Response:
        emulator = self.emulator
        partner = authorized_partner(emulator, request)
        site_id = site_id_of(request)
        symbol_of(request, SITE_MASTER)
        owned_site(emulator, partner, site_id, foreign=errors.PartnerAccountSiteNotFound)
        info = emulator.site_information(site_id)
        if info is None:
            raise errors.SiteDataFetchFailed(
                f"site {site_id} has no live data (its box is offline or not reporting)"
            )
        return JSONResponse([info.wire()])

    async def portfolio(self, request: Request) -> Response:
        emulator = self.emulator
        partner = authorized_partner(emulator, request)
        if symbol_of(request, PORTFOLIO) is Symbol.SITE_INFORMATION:
            raise errors.SiteIdRequired("symbol SiteInformation needs a siteId")
        sites = emulator.portfolio.sites_of(partner)
        if not sites:
            raise errors.PartnerAccountSitesNotFound("your partner account has no sites")
        infos = [emulator.site_information(spec.site_id) for spec in sites]
        return JSONResponse([info.wire() for info in infos if info is not None])

    async def events(self, request: Request) -> Response:
        emulator = self.emulator
        partner = authorized_partner(emulator, request)
        site_id = site_id_of(request)
        symbol_of(request, EVENTS)
        owned_site(emulator, partner, site_id, foreign=errors.InvalidSiteOwnership)
        events = emulator.availability_events(site_id)
        emulator.requests.served(site_id, "events", emulator.clock.now())
        return JSONResponse([event.wire() for event in events])
