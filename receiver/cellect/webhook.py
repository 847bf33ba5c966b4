"""Strict parsing of the time-series status webhook, with errors that name the field.

Shape (docs/decisions.md):
`{"siteId": int, "schedule": [{"start": ts, "end": ts, "status": 1..5}]}`, timestamps
ISO-8601 with a zone. Policy for unknown fields: they are ignored (Cellect may add fields
without notice, and refusing a delivery would lose the statuses it carries); the raw
body, unknown fields included, is kept with the stored delivery.

The result is a plain frozen dataclass, not the pydantic `StatusWebhook`: this runs once
per request on the ingest hot path, where building validated models cost more than the
checks themselves. It has the same attributes (`site_id`, `schedule[i].start/end/status`)
and the same `wire()`, and `to_model()` gives the pydantic model where one is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.timestamps import format_timestamp, parse_timestamp

MAX_ENTRIES = 10_000
# Ranges accepted at the door: what the history's columns hold (site ids are 32-bit) and
# what a schedule can be (entries end within 48 h of their post; no battery reports from
# before 2000 or after 2100). Anything else is refused with a 422 naming the field,
# never stored half or left to fail a whole batch, or the alerting, later.
MAX_SITE_ID = 2**31 - 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_SPAN = timedelta(hours=48)
_STATUS_OF = {s.value: s for s in ImplementationStatus}


@dataclass(frozen=True, slots=True)
class WebhookEntry:
    """One entry of a delivery: [start, end) in UTC and its reported status."""

    start: datetime
    end: datetime
    status: ImplementationStatus


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """A validated status webhook (the fields `StatusWebhook` has, as plain data)."""

    site_id: int
    schedule: tuple[WebhookEntry, ...]

    def wire(self) -> dict[str, object]:
        """The JSON-ready dict in the API's spelling, as `StatusWebhook.wire()` gives it."""
        schedule = [
            {
                "start": format_timestamp(e.start),
                "end": format_timestamp(e.end),
                "status": int(e.status),
            }
            for e in self.schedule
        ]
        return {"siteId": self.site_id, "schedule": schedule}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class PayloadError(Exception):
    """The body is not a valid status webhook; `errors` names every bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(raw: object, where: str, errors: list[FieldError]) -> WebhookEntry | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(where, "must be an object"))
        return None
    start = parse_timestamp(raw.get("start"))
    end = parse_timestamp(raw.get("end"))
    value = raw.get("status")
    status = _STATUS_OF.get(value) if isinstance(value, int) and _is_int(value) else None
    for name, moment in (("start", start), ("end", end)):
        if moment is None:
            errors.append(FieldError(f"{where}.{name}", "must be an ISO-8601 timestamp with zone"))
        elif not EARLIEST <= moment < LATEST:
            errors.append(FieldError(f"{where}.{name}", "must be in the years 2000 to 2099"))
    if status is None:
        errors.append(FieldError(f"{where}.status", "must be an integer from 1 to 5"))
    if start is None or end is None or status is None:
        return None
    if start >= end:
        errors.append(FieldError(f"{where}.start", "must be before end"))
    elif end - start > MAX_SPAN:
        errors.append(FieldError(f"{where}.end", "must be at most 48 hours after start"))
    return WebhookEntry(start, end, status)


def parse_status_webhook(data: object) -> ParsedWebhook:
    """The validated webhook, or PayloadError listing every problem."""
    if not isinstance(data, dict):
        raise PayloadError([FieldError("body", "must be a JSON object")])
    errors: list[FieldError] = []
    site_id = data.get("siteId")
    if not _is_int(site_id) or not 1 <= site_id <= MAX_SITE_ID:  # type: ignore[operator]
        errors.append(FieldError("siteId", f"must be an integer from 1 to {MAX_SITE_ID}"))
    schedule = data.get("schedule")
    entries: list[WebhookEntry] = []
    if not isinstance(schedule, list) or not schedule:
        errors.append(FieldError("schedule", "must be a non-empty array"))
    elif len(schedule) > MAX_ENTRIES:
        errors.append(FieldError("schedule", f"must have at most {MAX_ENTRIES} entries"))
    else:
        for index, raw in enumerate(schedule):
            entry = _entry(raw, f"schedule[{index}]", errors)
            if entry is not None:
                entries.append(entry)
    if errors:
        raise PayloadError(errors)
    assert isinstance(site_id, int)
    return ParsedWebhook(site_id, tuple(entries))
