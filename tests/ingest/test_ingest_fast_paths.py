"""The ingest hot path's shortcuts give exactly what the general code they replace gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from starlette.responses import JSONResponse

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.models import StatusWebhook
from receiver.cellect.timestamps import format_timestamp
from receiver.cellect.webhook import parse_status_webhook
from receiver.ingest.endpoint import JSON_HEADERS, acknowledgement, render_json
from receiver.storage.binding import datetime_binder
from receiver.storage.deliveries import (
    BatchOutcome,
    canonical_digest,
    canonical_json,
    wire_timestamp,
)
from receiver.storage.types import UtcDateTime

zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones
)
# What the door lets in: the years 2000 to 2099 (a day inside, whatever the zone).
accepted = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=zones
)
entries = st.tuples(accepted, st.integers(1, 10**8), st.sampled_from(list(ImplementationStatus)))


def _body(site_id: int, raw: list[tuple[datetime, int, ImplementationStatus]]) -> object:
    schedule = [
        {"start": s.isoformat(), "end": (s + timedelta(microseconds=d)).isoformat(), "status": v}
        for s, d, v in raw
    ]
    return {"siteId": site_id, "schedule": schedule, "extra": [1]}


@given(st.integers(1, 2**31 - 1), st.lists(entries, min_size=1, max_size=4))
def test_parsed_webhook_matches_the_pydantic_model(
    site_id: int, raw: list[tuple[datetime, int, ImplementationStatus]]
) -> None:
    """The plain parse has the model's values, wire form and canonical digest."""
    body = _body(site_id, raw)
    parsed = parse_status_webhook(body)
    model = StatusWebhook.model_validate(body)
    assert parsed.wire() == model.wire()
    assert parsed.wire() == model.wire()
    expected = json.dumps(model.wire(), sort_keys=True, separators=(",", ":"))
    assert canonical_json(parsed) == canonical_json(model) == expected
    assert canonical_digest(parsed) == canonical_digest(model) == canonical_digest(model.wire())


@given(moments)
def test_wire_timestamp_is_format_timestamp(moment: datetime) -> None:
    """The isoformat shortcut spells every moment as format_timestamp does (years < 1000 too)."""
    assert wire_timestamp(moment) == format_timestamp(moment)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), psycopg.dialect()], ids=lambda d: d.name)
@given(moment=moments)
def test_datetime_binder_sends_what_sqlalchemy_would(dialect: object, moment: datetime) -> None:
    """Pre-bound datetimes equal UtcDateTime's processing on SQLite and PostgreSQL."""
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)  # type: ignore[arg-type]
    assert processor is not None
    assert datetime_binder(dialect)(moment) == processor(moment)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), psycopg.dialect()], ids=lambda d: d.name)
def test_datetime_binder_refuses_naive_datetimes(dialect: object) -> None:
    """A naive datetime is refused, as the UtcDateTime column refuses it."""
    with pytest.raises(ValueError, match="aware"):
        datetime_binder(dialect)(datetime(2026, 3, 2, 8, 0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "outcome",
    [BatchOutcome("d", False, 17), BatchOutcome("d", True), BatchOutcome("d", False, 2**62)],
)
def test_acknowledgement_is_the_json_response_body(outcome: BatchOutcome) -> None:
    """The hand-written 200 body is byte for byte what JSONResponse renders."""
    status = "duplicate" if outcome.duplicate else "accepted"
    expected = JSONResponse(
        {"status": status, "duplicate": outcome.duplicate, "deliveryId": outcome.delivery_id}
    )
    assert acknowledgement(status, outcome) == expected.body
    assert JSON_HEADERS[1].decode() == expected.headers["content-type"]


@pytest.mark.parametrize(
    "content",
    [{"error": "invalid_payload", "message": "naïve – “quoted”", "errors": [{"field": "x"}]}],
)
def test_error_bodies_render_as_json_response_does(content: dict[str, object]) -> None:
    """Refusals are rendered by hand too: same bytes as JSONResponse (UTF-8, compact)."""
    assert render_json(content) == JSONResponse(content).body


def test_utc_moments_keep_their_instant() -> None:
    """A moment in another zone is bound and spelled as its UTC instant."""
    moment = datetime(2026, 3, 2, 10, 0, 0, 123999, tzinfo=timezone(timedelta(hours=2)))
    assert wire_timestamp(moment) == "2026-03-02T08:00:00.123Z"
    assert datetime_binder(sqlite.dialect())(moment) == "2026-03-02 08:00:00.123999"
    assert datetime_binder(psycopg.dialect())(moment) == moment.astimezone(UTC)
