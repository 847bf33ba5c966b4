"""Request parsing shared by the emulated Partner API's endpoints: tokens, ids, symbols.

Each helper raises the typed Cellect error of the guide for bad input; the app turns
it into the documented error body.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.cellect import errors
from receiver.cellect.enums import KNOWN_SYMBOLS, Symbol
from receiver.cellect.validation import Violation
from receiver.emulator.cloud import Emulator
from receiver.emulator.state import SiteSpec

# Ids beyond 18 digits are refused as invalid rather than looked up.
_POSITIVE = re.compile(r"0*[1-9][0-9]{0,17}")
_UNAUTHORIZED = "a valid access token is required (missing, invalid or expired)"


def bearer(request: Request) -> str | None:
    """The token of the Authorization header (`Bearer <t>` or bare); None when absent."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    parts = header.split(None, 1)
    if parts and parts[0].lower() == "bearer":
        return parts[1].strip() if len(parts) == 2 else ""
    return header.strip()


def authorized_partner(emulator: Emulator, request: Request) -> int:
    """The partner an access token speaks for; 401 otherwise."""
    token = bearer(request)
    partner = emulator.tokens.partner_of(token) if token else None
    if partner is None:
        raise errors.UnknownCellectError(_UNAUTHORIZED, http_status=401)
    return partner


def site_id_of(request: Request) -> int:
    raw = request.path_params.get("site_id")
    if raw is None or not raw.strip():
        raise errors.SiteIdRequired("siteId is required")
    if not _POSITIVE.fullmatch(raw):
        raise errors.InvalidSiteId("siteId must be a positive integer")
    return int(raw)


def symbol_of(
    request: Request, allowed: frozenset[Symbol], default: Symbol | None = None
) -> Symbol:
    """The `symbol` query parameter, checked against what this operation serves.

    With a `default`, an absent symbol means the default (a blank one is still 30017).
    """
    raw = request.query_params.get("symbol")
    if raw is None and default is not None:
        return default
    if raw is None or not raw.strip():
        raise errors.SymbolRequired("symbol is required")
    if raw not in KNOWN_SYMBOLS:
        raise errors.InvalidSymbol(f"unknown symbol; expected one of {sorted(allowed)}")
    if Symbol(raw) not in allowed:
        raise errors.SymbolNotImplemented(f"symbol {raw} is not served by this operation")
    return Symbol(raw)


def owned_site(
    emulator: Emulator, partner_id: int, site_id: int, *, foreign: type[errors.CellectApiError]
) -> SiteSpec:
    spec = emulator.specs.get(site_id)
    if spec is None:
        raise errors.SiteNotFound(f"site {site_id} does not exist")
    if spec.partner_id != partner_id:
        raise foreign(f"site {site_id} is not in your partner account")
    return spec


def violation_response(violations: list[Violation]) -> JSONResponse:
    """The first violation as the error, every one of them listed under `errors`."""
    first = violations[0]
    body: dict[str, Any] = errors.error_for(first.code, first.message).body()
    body["field"] = first.field
    body["errors"] = [{"code": v.code, "field": v.field, "message": v.message} for v in violations]
    return JSONResponse(body, status_code=body["statusCode"])


async def json_body(request: Request) -> object:
    """The parsed JSON body, or None when it is empty or not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return None
