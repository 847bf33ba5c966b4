"""The silences API refuses bad input with a 422 naming the field, never a 5xx, and keeps
silences within a year — every input below once crashed it or got through."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.operator_api import AUTH
from tests.support.stack import START

BASE: dict[str, Any] = {"matchers": {"rule": "SiteUnavailable"}, "comment": "input test"}
YEAR = timedelta(days=365)


def _post(api: TestClient, body: Any) -> Any:
    return api.post("/api/silences", json=body, headers=AUTH)


def _refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    answer = response.json()
    assert set(answer) == {"error", "message", "field"}
    assert answer["field"] == field, answer
    assert answer["message"]


@pytest.mark.parametrize(
    "duration",
    [
        "99999999999w",
        "3000000d",
        pytest.param("1" * 400 + "s", id="400-digit-seconds"),
        pytest.param("9" * 20 + "h" + "9" * 20 + "m", id="20-digit-hours-and-minutes"),
        "366d",
        "53w",
        "8761h",
        "0.0001s",
        "0s",
        "1e9s",
        "²h",
        "٣h",
        "inf s",
        "nan s",
        "-1h",
        pytest.param("1h" * 100, id="1h-100-times"),
        "",
    ],
)
def test_a_duration_out_of_bounds_or_malformed_is_422(api: TestClient, duration: str) -> None:
    """Durations beyond a year, under a second, huge or not ASCII digits: 422 on `duration`."""
    _refused(_post(api, {**BASE, "duration": duration}), "duration")


@pytest.mark.parametrize(
    "duration", [1, pytest.param(10**400, id="400-digit-number"), 3.5, None, ["1h"], {"h": 1}]
)
def test_a_duration_that_is_not_a_string_is_422(api: TestClient, duration: Any) -> None:
    """A number (even a 400-digit one), null (with no ends_at) or any other JSON type as
    the duration: 422."""
    _refused(_post(api, {**BASE, "duration": duration}), "duration")


@pytest.mark.parametrize(
    "ends_at",
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59Z",
        "9000-01-01T00:00:00Z",
        (START + YEAR + timedelta(seconds=1)).isoformat(),
        (START - timedelta(seconds=1)).isoformat(),
        START.isoformat(),
        "2026-03-02T09:00:00",
        "tomorrow",
        "2026-13-01T00:00:00Z",
        1e20,
        1772445600,
    ],
)
def test_an_ends_at_out_of_bounds_or_malformed_is_422(api: TestClient, ends_at: Any) -> None:
    """ends_at past, now, over a year ahead, beyond year 9999 in UTC, naive, or not an
    ISO-8601 string: 422 on `ends_at`."""
    _refused(_post(api, {**BASE, "ends_at": ends_at}), "ends_at")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BASE, "duration": "1h", "ends_at": "2026-03-02T10:00:00Z"}, "ends_at"),
        ({"matchers": {"rule": "A"}, "comment": "x"}, "duration"),
        ({**BASE, "duration": "1h", "comment": "nul \x00 byte"}, "comment"),
        ({**BASE, "duration": "1h", "comment": "bell \x07"}, "comment"),
        ({**BASE, "duration": "1h", "comment": ""}, "comment"),
        ({**BASE, "duration": "1h", "comment": "x" * 1001}, "comment"),
        ({**BASE, "duration": "1h", "created_by": "nul\x00"}, "created_by"),
        ({**BASE, "duration": "1h", "created_by": "a\nb"}, "created_by"),
        ({**BASE, "duration": "1h", "matchers": {"site_id": "3\x00"}}, "matchers"),
        ({**BASE, "duration": "1h", "matchers": {"site id": "3"}}, "matchers"),
        ({**BASE, "duration": "1h", "matchers": {"": "3"}}, "matchers"),
        ({**BASE, "duration": "1h", "matchers": {"site_id": ""}}, "matchers"),
        ({**BASE, "duration": "1h", "matchers": {"site_id": "x" * 201}}, "matchers"),
        ({**BASE, "duration": "1h", "matchers": {f"l{i}": "v" for i in range(33)}}, "matchers"),
        ({**BASE, "duration": "1h", "matchers": {}}, "matchers"),
        ({**BASE, "duration": "1h", "matchers": {"site_id": 3}}, "matchers.site_id"),
        ({**BASE, "duration": "1h", "matchers": ["rule"]}, "matchers"),
        ({**BASE, "duration": "1h", "unknown": 1}, "unknown"),
        ([BASE], "body"),
        ("silence", "body"),
    ],
)
def test_bad_silence_fields_are_422_naming_the_field(
    api: TestClient, body: Any, field: str
) -> None:
    """Control characters (NUL included), empty or oversized strings, bad label names,
    too many matchers, unknown fields, both or neither of duration and ends_at: 422."""
    _refused(_post(api, body), field)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b'{"comment": "\\ud800"}',
        pytest.param(b"[" * 5000, id="nested-5000-deep"),
        b"null",
    ],
)
def test_a_body_that_is_not_a_json_object_is_422(api: TestClient, raw: bytes) -> None:
    """Empty, truncated, not UTF-8, a lone surrogate, nested too deep: 422 on `body`."""
    headers = {**AUTH, "Content-Type": "application/json"}
    _refused(api.post("/api/silences", content=raw, headers=headers), "body")


@pytest.mark.parametrize(
    "silence_id",
    [
        "9" * 30,
        "2147483648",
        pytest.param("9" * 5000, id="5000-digits"),
        "%C2%B2",
        "%D9%A3",
        "-1",
        "1.0",
        "0x1",
        "%20%31",
        "abc",
    ],
)
def test_expiring_by_a_malformed_or_huge_id_is_422(api: TestClient, silence_id: str) -> None:
    """DELETE /api/silences/{id} with a huge number, a Unicode digit or no integer: 422 on `id`."""
    _refused(api.delete(f"/api/silences/{silence_id}", headers=AUTH), "id")


def test_expiring_an_unknown_id_in_range_is_404(api: TestClient) -> None:
    """The largest id a silence can have, unknown: 404, not a database error."""
    response = api.delete("/api/silences/2147483647", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["field"] == "id"


@pytest.mark.parametrize(
    ("when", "length"),
    [
        ({"duration": "365d"}, YEAR),
        ({"duration": "52w"}, timedelta(weeks=52)),
        ({"duration": "1s"}, timedelta(seconds=1)),
        ({"duration": "1h 30m"}, timedelta(minutes=90)),
        ({"ends_at": (START + YEAR).isoformat()}, YEAR),
        ({"ends_at": "2026-03-02T23:00:00+14:00"}, timedelta(hours=1)),
    ],
)
def test_silences_up_to_a_year_are_made_and_listed(
    api: TestClient, when: dict[str, str], length: timedelta
) -> None:
    """Durations from 1 s to 365 days, and ends_at up to a year ahead in any zone, are made
    (201) and listed exactly as answered."""
    created = _post(api, {**BASE, **when, "comment": f"bounds {when}"})
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["starts_at"] == START.isoformat()
    assert silence["ends_at"] == (START + length).isoformat()
    assert silence in api.get("/api/silences", headers=AUTH).json()["silences"]
