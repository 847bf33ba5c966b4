"""The complete Cellect error catalogue (guide 1.0.1, "Error Codes"): 38 codes, one
typed exception per code.

Error tree::

    CellectError                      anything the vendor contract can report
    └── CellectApiError               a Cellect error code with its HTTP status
        ├── <one subclass per code>   e.g. SiteNotFound (30085, 404)
        └── UnknownCellectError       a code or body shape this catalogue does not know

Transport failures (timeouts, refused connections, retries exhausted) are not part of
the contract; the client adds them to this tree in ``receiver.vendor.client``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class ErrorSpec:
    """One row of the guide's error table."""

    code: int
    title: str
    http_status: int


class CellectError(Exception):
    """Base of every error cellect-monitor raises about the Cellect API."""


class CellectApiError(CellectError):
    """A Cellect error code, with the HTTP status it travels with."""

    code: ClassVar[int] = 0
    title: ClassVar[str] = "Cellect API error"
    default_status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, *, http_status: int | None = None) -> None:
        self.message = message or self.title
        self.http_status = http_status if http_status is not None else self.default_status
        super().__init__(f"{self.code} {self.title}: {self.message}")

    def body(self) -> dict[str, Any]:
        """The JSON error body the API answers with."""
        return {"statusCode": self.http_status, "errorCode": self.code, "message": self.message}


class UnknownCellectError(CellectApiError):
    """An error response whose code (or shape) the catalogue does not know."""

    def __init__(self, message: str | None = None, *, http_status: int, code: int = 0) -> None:
        self.unknown_code = code
        super().__init__(message, http_status=http_status)

    def body(self) -> dict[str, Any]:
        return {
            "statusCode": self.http_status,
            "errorCode": self.unknown_code,
            "message": self.message,
        }


class TimeSeriesFetchFailed(CellectApiError):
    code = 30001
    title = "Time Series Fetch Failed"
    default_status = 500


class SiteDataFetchFailed(CellectApiError):
    code = 30003
    title = "Site Data Fetch Failed"
    default_status = 500


class InvalidSiteOwnership(CellectApiError):
    code = 30004
    title = "Invalid Site Ownership"
    default_status = 403


class TimeSeriesStatusNotFound(CellectApiError):
    code = 30005
    title = "Time Series Status Not Found"
    default_status = 404


class EssPowerAcTimeSeriesSaveFailed(CellectApiError):
    code = 30006
    title = "ESS Power AC Time Series Save Failed"
    default_status = 500


class SiteIdRequired(CellectApiError):
    code = 30007
    title = "Site ID Required"
    default_status = 400


class InvalidSiteId(CellectApiError):
    code = 30008
    title = "Invalid Site ID"
    default_status = 400


class StartDateRequired(CellectApiError):
    code = 30009
    title = "Start Date Required"
    default_status = 400


class InvalidStartDate(CellectApiError):
    code = 30010
    title = "Invalid Start Date"
    default_status = 400


class EndDateRequired(CellectApiError):
    code = 30011
    title = "End Date Required"
    default_status = 400


class InvalidEndDate(CellectApiError):
    code = 30012
    title = "Invalid End Date"
    default_status = 400


class PowerValueRequired(CellectApiError):
    code = 30013
    title = "Power Value Required"
    default_status = 400


class InvalidPowerValue(CellectApiError):
    code = 30014
    title = "Invalid Power Value"
    default_status = 400


class SymbolRequired(CellectApiError):
    code = 30017
    title = "Symbol Required"
    default_status = 400


class InvalidSymbol(CellectApiError):
    code = 30018
    title = "Invalid Symbol"
    default_status = 400


class SymbolNotImplemented(CellectApiError):
    code = 30019
    title = "Symbol Not Implemented"
    default_status = 501


class PartnerAccountNotFound(CellectApiError):
    code = 30021
    title = "Partner Account Not Found"
    default_status = 404


class PartnerAccountIdRequired(CellectApiError):
    code = 30042
    title = "Partner Account ID Required"
    default_status = 400


class InvalidPartnerAccountId(CellectApiError):
    code = 30043
    title = "Invalid Partner Account ID"
    default_status = 400


class ResourceTypeRequired(CellectApiError):
    code = 30064
    title = "Resource Type Required"
    default_status = 400


class ResourceTypeInvalid(CellectApiError):
    code = 30065
    title = "Resource Type Invalid"
    default_status = 400


class RefreshTokenNotFound(CellectApiError):
    code = 30069
    title = "Refresh Token Not Found"
    default_status = 400


class InvalidRefreshToken(CellectApiError):
    code = 30072
    title = "Invalid Refresh Token"
    default_status = 401


class AccessTokenPrivateKeyNotFound(CellectApiError):
    code = 30078
    title = "Access Token Private Key Not Found"
    default_status = 500


class RefreshTokenIdentifierRequired(CellectApiError):
    code = 30082
    title = "Refresh Token Identifier Required"
    default_status = 400


class InvalidRefreshTokenIdentifier(CellectApiError):
    code = 30083
    title = "Invalid Refresh Token Identifier"
    default_status = 400


class SiteNotFound(CellectApiError):
    code = 30085
    title = "Site Not Found"
    default_status = 404


class PartnerAccountSitesNotFound(CellectApiError):
    code = 30086
    title = "Partner Account Sites Not Found"
    default_status = 404


class PartnerAccountSiteNotFound(CellectApiError):
    code = 30087
    title = "Partner Account Site Not Found"
    default_status = 404


class TimeSeriesDatesOverlap(CellectApiError):
    code = 30088
    title = "Time Series Dates Overlap"
    default_status = 400


class StartEndDateNotBeforeTimeSeries(CellectApiError):
    code = 30089
    title = "Start and End Date is bigger or equal to Time Series"
    default_status = 400


class FailedToDeleteTimeSeries(CellectApiError):
    code = 30090
    title = "Failed to Delete Time Series"
    default_status = 500


class StartLessThanFiveMinutesFromNow(CellectApiError):
    code = 30091
    title = "Time Series Start Date is Less Than 5 Minutes from Now"
    default_status = 400


class StartMoreThan48HoursFromNow(CellectApiError):
    code = 30092
    title = "Time Series Start Date is More Than 48 Hours from Now"
    default_status = 400


class StartLaterThanEnd(CellectApiError):
    code = 30103
    title = "Time Series Start Date Later Than End Date"
    default_status = 400


class DatesNotInThePast(CellectApiError):
    code = 30104
    title = "Time Series Dates Are Not In the Past"
    default_status = 400


class ChargePowerAboveRated(CellectApiError):
    code = 30113
    title = "ESS Power AC Time Series Charge Power AC Bigger Than Allowed"
    default_status = 400


class DischargePowerAboveRated(CellectApiError):
    code = 30114
    title = "ESS Power AC Time Series Discharge Power AC Bigger Than Allowed"
    default_status = 400


CATALOGUE: dict[int, type[CellectApiError]] = {
    cls.code: cls for cls in CellectApiError.__subclasses__() if cls is not UnknownCellectError
}
SPECS: dict[int, ErrorSpec] = {
    code: ErrorSpec(code, cls.title, cls.default_status) for code, cls in CATALOGUE.items()
}


def error_for(
    code: int, message: str | None = None, *, http_status: int | None = None
) -> CellectApiError:
    """The typed error for `code`; an UnknownCellectError when the code is not catalogued."""
    cls = CATALOGUE.get(code)
    if cls is None:
        return UnknownCellectError(message, http_status=http_status or 500, code=code)
    return cls(message, http_status=http_status)


def error_from_response(http_status: int, body: Any) -> CellectApiError:
    """Parse an error body tolerantly: any shape still becomes a typed error."""
    code, message = 0, None
    if isinstance(body, dict):
        raw_code = body.get("errorCode", body.get("code"))
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        elif isinstance(raw_code, str) and raw_code.strip().isdigit():
            code = int(raw_code)
        raw_message = body.get("message")
        if isinstance(raw_message, str):
            message = raw_message[:500]
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:500]
    if code in CATALOGUE:
        return CATALOGUE[code](message, http_status=http_status)
    return UnknownCellectError(message or f"HTTP {http_status}", http_status=http_status, code=code)
