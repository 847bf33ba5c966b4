"""Strict parsing of the status webhook: every bad field is named."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.webhook import PayloadError, parse_status_webhook

GOOD_ENTRY = {"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T12:15:00Z", "status": 2}


def test_a_valid_webhook_parses() -> None:
    """The guide's shape parses into typed entries in UTC."""
    parsed = parse_status_webhook(
        {"siteId": 7, "schedule": [GOOD_ENTRY, {**GOOD_ENTRY, "status": 3}], "extra": 1}
    )
    assert parsed.site_id == 7
    assert [e.status for e in parsed.schedule] == [
        ImplementationStatus.IMPLEMENTED,
        ImplementationStatus.IMPLEMENTATION_FAILED,
    ]
    assert parsed.schedule[0].start.isoformat() == "2026-03-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("x", "body"),
        ({"schedule": [GOOD_ENTRY]}, "siteId"),
        ({"siteId": "7", "schedule": [GOOD_ENTRY]}, "siteId"),
        ({"siteId": True, "schedule": [GOOD_ENTRY]}, "siteId"),
        ({"siteId": 0, "schedule": [GOOD_ENTRY]}, "siteId"),
        ({"siteId": 1.5, "schedule": [GOOD_ENTRY]}, "siteId"),
        ({"siteId": 1}, "schedule"),
        ({"siteId": 1, "schedule": []}, "schedule"),
        ({"siteId": 1, "schedule": {}}, "schedule"),
        ({"siteId": 1, "schedule": [1]}, "schedule[0]"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "status": 6}]}, "schedule[0].status"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "status": 0}]}, "schedule[0].status"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "status": "2"}]}, "schedule[0].status"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "status": 2.0}]}, "schedule[0].status"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "status": True}]}, "schedule[0].status"),
        (
            {"siteId": 1, "schedule": [{**GOOD_ENTRY, "start": "2026-03-01T12:00:00"}]},
            "schedule[0].start",
        ),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "end": "tomorrow"}]}, "schedule[0].end"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "end": None}]}, "schedule[0].end"),
        (
            {"siteId": 1, "schedule": [GOOD_ENTRY, {**GOOD_ENTRY, "end": GOOD_ENTRY["start"]}]},
            "schedule[1].start",
        ),
        ({"siteId": 2**31, "schedule": [GOOD_ENTRY]}, "siteId"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "start": "1999-12-31T23:59:59Z"}]},
         "schedule[0].start"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "end": "2100-01-01T00:00:00Z"}]},
         "schedule[0].end"),
        ({"siteId": 1, "schedule": [{**GOOD_ENTRY, "end": "2026-03-03T12:00:01Z"}]},
         "schedule[0].end"),
        ({"siteId": 1, "schedule": [{"start": "0001-01-01T00:00:00Z",
                                     "end": "9999-12-31T23:59:59Z", "status": 1}]},
         "schedule[0].start"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named(body: Any, field: str) -> None:
    """Wrong types, unknown statuses, naive or unparsable timestamps, start≥end, a site id
    beyond 32 bits, times outside 2000–2099 and entries over 48 hours are refused."""
    with pytest.raises(PayloadError) as caught:
        parse_status_webhook(body)
    assert field in [e.field for e in caught.value.errors]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["siteId", "schedule", "start", "end", "status", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_value_parses_or_is_refused_cleanly(value: Any) -> None:
    """No JSON value makes the parser raise anything but PayloadError."""
    try:
        parsed = parse_status_webhook(value)
    except PayloadError as exc:
        errors = exc.errors
    else:
        errors = []
        assert parsed.schedule
    assert all(e.field for e in errors)
