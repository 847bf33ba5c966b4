"""Fuzzing the silences API on the real app: no input gets a 5xx, every refusal names its
field, and every accepted silence is listed exactly as answered, within a year."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.support.operator_api import AUTH
from tests.support.stack import START

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
label_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
names = label_names | st.text(max_size=10)
printable = st.characters(exclude_categories=["Cc", "Cs"])
numbers = (
    st.integers(0, 10**15).map(str)
    | st.decimals(0, 10**6, places=3, allow_nan=False).map(str)
    | st.text("0123456789.²٣", max_size=8)
)
small_numbers = st.integers(0, 60).map(str) | st.decimals(0, 60, places=2).map(str)


def _joined(numbers: st.SearchStrategy[str], units: str) -> st.SearchStrategy[str]:
    parts = st.lists(st.tuples(numbers, st.sampled_from(units)), min_size=1, max_size=3)
    return parts.map(lambda found: "".join(n + u for n, u in found))


zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)), timezone(timedelta())]
)
near = st.datetimes(
    min_value=(START - timedelta(days=2)).replace(tzinfo=None),
    max_value=(START + timedelta(days=400)).replace(tzinfo=None),
    timezones=zones,
)
# Wild bodies: any shape and type, mostly refused.
wild = st.fixed_dictionaries(
    {},
    optional={
        "matchers": st.dictionaries(names, st.text(max_size=20), max_size=5) | json_values,
        "duration": _joined(numbers, "smhdwy ") | st.text(max_size=20) | json_values,
        "ends_at": (st.datetimes(timezones=zones) | near).map(datetime.isoformat)
        | st.text(max_size=30)
        | json_values,
        "comment": st.text(max_size=1100) | json_values,
        "created_by": st.text(max_size=210) | json_values,
        "extra": json_values,
    },
)
# Plausible bodies: the right shape, values near and across the bounds, often accepted.
plausible = st.fixed_dictionaries(
    {
        "matchers": st.dictionaries(
            label_names, st.text(printable, min_size=1, max_size=30), min_size=1, max_size=4
        ),
        "comment": st.text(min_size=1, max_size=200),
    },
    optional={"created_by": st.text(printable, min_size=1, max_size=40)},
).flatmap(
    lambda body: st.one_of(
        _joined(small_numbers, "smhdw").map(lambda d: {**body, "duration": d}),
        near.map(lambda at: {**body, "ends_at": at.isoformat()}),
    )
)
bodies = st.one_of(plausible, plausible, wild)


def _round_trips(api: TestClient, body: dict[str, Any], silence: dict[str, Any]) -> None:
    """The answer holds what was sent, lies within a year, and is listed exactly so."""
    assert silence["matchers"] == body["matchers"]
    assert silence["comment"] == body["comment"]
    assert silence["created_by"] == body.get("created_by", "api")
    assert silence["starts_at"] == START.isoformat()
    ends_at = datetime.fromisoformat(silence["ends_at"])
    assert START < ends_at <= START + timedelta(days=365)
    if "ends_at" in body:
        assert ends_at == datetime.fromisoformat(body["ends_at"])
    assert silence in api.get("/api/silences", headers=AUTH).json()["silences"]
    # Expired again, so the listing each example reads stays short.
    assert api.delete(f"/api/silences/{silence['id']}", headers=AUTH).status_code == 204


@FUZZ
@given(body=bodies)
@example(body={"matchers": {"rule": "A"}, "duration": "99999999999w", "comment": "x"})
@example(body={"matchers": {"rule": "A"}, "ends_at": "9999-12-31T23:59:59-14:00", "comment": "x"})
@example(body={"matchers": {"rule": "A"}, "duration": "1h", "comment": "\x00"})
@example(body={"matchers": {"a": "b"}, "duration": "1h", "comment": "ok", "created_by": "me"})
def test_fuzzed_silences_never_5xx_and_accepted_ones_round_trip(
    api: TestClient, body: dict[str, Any]
) -> None:
    """Any JSON object posted: 201 and listed as answered, or 422 naming a field."""
    response = api.post("/api/silences", content=json.dumps(body), headers=JSON_HEADERS)
    assert response.status_code in (201, 422), response.text
    refused = response.json().get("field") if response.status_code == 422 else None
    event(f"{response.status_code} {refused or ''}")  # --hypothesis-show-statistics
    if response.status_code == 422:
        assert response.json()["field"]
    else:
        _round_trips(api, body, response.json())


@FUZZ
@given(segment=st.text(min_size=1, max_size=40) | st.integers(-(2**80), 2**80).map(str))
@example(segment="²")
@example(segment="9" * 400)
def test_fuzzed_silence_ids_never_5xx(api: TestClient, segment: str) -> None:
    """DELETE /api/silences/<anything>: 204, 404 (unknown or no such route), 405 or 422,
    never a 5xx."""
    response = api.delete(f"/api/silences/{quote(segment, safe='')}", headers=AUTH)
    assert response.status_code in (204, 404, 405, 422), response.text
