"""Unit tests of the Cellect error catalogue: codes, statuses, bodies, tolerant parsing."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.cellect.errors import (
    CATALOGUE,
    SPECS,
    CellectApiError,
    CellectError,
    InvalidRefreshToken,
    SiteNotFound,
    UnknownCellectError,
    error_for,
    error_from_response,
)

# The guide's table (1.0.1, "Error Codes"): code → HTTP status.
GUIDE_TABLE = {
    30001: 500, 30003: 500, 30004: 403, 30005: 404, 30006: 500, 30007: 400, 30008: 400,
    30009: 400, 30010: 400, 30011: 400, 30012: 400, 30013: 400, 30014: 400, 30017: 400,
    30018: 400, 30019: 501, 30021: 404, 30042: 400, 30043: 400, 30064: 400, 30065: 400,
    30069: 400, 30072: 401, 30078: 500, 30082: 400, 30083: 400, 30085: 404, 30086: 404,
    30087: 404, 30088: 400, 30089: 400, 30090: 500, 30091: 400, 30092: 400, 30103: 400,
    30104: 400, 30113: 400, 30114: 400,
}  # fmt: skip


def test_catalogue_has_the_guides_38_codes() -> None:
    """The catalogue holds exactly the 38 codes of the guide's table."""
    assert len(CATALOGUE) == 38
    assert set(CATALOGUE) == set(GUIDE_TABLE)


@pytest.mark.parametrize(("code", "status"), sorted(GUIDE_TABLE.items()))
def test_each_code_travels_with_the_guides_status(code: int, status: int) -> None:
    """Each typed error defaults to the HTTP status the guide gives its code."""
    error = error_for(code)
    assert type(error) is CATALOGUE[code]
    assert (error.code, error.http_status) == (code, status)
    assert SPECS[code].http_status == status
    assert error.body() == {"statusCode": status, "errorCode": code, "message": SPECS[code].title}


def test_titles_are_unique_and_non_empty() -> None:
    """Every code has its own non-empty title, so messages tell codes apart."""
    titles = [spec.title for spec in SPECS.values()]
    assert all(titles)
    assert len(set(titles)) == len(titles)


def test_error_tree() -> None:
    """Typed errors are CellectApiErrors, which are CellectErrors."""
    error = SiteNotFound("site 7")
    assert isinstance(error, CellectApiError)
    assert isinstance(error, CellectError)
    assert "30085" in str(error)
    assert error.message == "site 7"


def test_error_for_unknown_code_is_unknown_error() -> None:
    """A code the catalogue does not know becomes an UnknownCellectError keeping the code."""
    error = error_for(39999, "odd", http_status=418)
    assert isinstance(error, UnknownCellectError)
    assert error.body() == {"statusCode": 418, "errorCode": 39999, "message": "odd"}


def test_error_from_response_reads_the_documented_body() -> None:
    """The documented body shape gives the typed error with the answer's status."""
    body = {"statusCode": 401, "errorCode": 30072, "message": "expired"}
    error = error_from_response(401, body)
    assert isinstance(error, InvalidRefreshToken)
    assert (error.http_status, error.message) == (401, "expired")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"errorCode": "30085"}, 30085),
        ({"code": 30085}, 30085),
        ({"errorCode": " 30085 "}, 30085),
        ({"errorCode": True}, 0),
        ({"errorCode": 30085.0}, 0),
        ({"errorCode": None}, 0),
        ({"errorCode": "abc"}, 0),
        ({"errorCode": 12345}, 12345),
    ],
)
def test_error_from_response_tolerates_odd_codes(body: dict[str, Any], code: int) -> None:
    """Codes as strings or under `code` are read; anything else is an unknown error."""
    error = error_from_response(404, body)
    assert error.http_status == 404
    if code in CATALOGUE:
        assert type(error) is CATALOGUE[code]
    else:
        assert isinstance(error, UnknownCellectError)
        assert error.unknown_code == code


@pytest.mark.parametrize(
    "body", [None, [], [1, 2], "", "  ", 42, 3.5, True, {"message": 5}, {"a": {"b": []}}]
)
def test_error_from_response_never_fails_on_odd_bodies(body: object) -> None:
    """Any body shape still becomes a typed error with the HTTP status as message fallback."""
    error = error_from_response(502, body)
    assert isinstance(error, UnknownCellectError)
    assert error.http_status == 502
    assert error.message == "HTTP 502"


def test_error_from_response_keeps_text_bodies_short() -> None:
    """A plain-text body becomes the message, cut to 500 characters."""
    error = error_from_response(503, "  Service Unavailable " + "x" * 1000)
    assert error.message.startswith("Service Unavailable")
    assert len(error.message) == 500


def test_error_from_response_cuts_long_messages() -> None:
    """A long JSON message is cut to 500 characters."""
    error = error_from_response(400, {"errorCode": 30008, "message": "m" * 2000})
    assert len(error.message) == 500
