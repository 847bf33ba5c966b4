"""Strict parsing of the time-series status webhook, with errors that name the field.

Shape (DESIGN.md): `{"siteId": int, "schedule": [{"start": ts, "end": ts, "status": 1..5}]}`,
timestamps ISO-8601 with a zone. Policy for unknown fields: they are ignored (Cellect may
add fields without notice, and refusing a delivery would lose the statuses it carries);
the raw body, unknown fields included, is kept with the stored delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.models import StatusWebhook, WebhookScheduleEntry
from receiver.cellect.timestamps import parse_timestamp

MAX_ENTRIES = 10_000
_STATUSES = {s.value for s in ImplementationStatus}


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


def _entry(raw: object, where: str, errors: list[FieldError]) -> WebhookScheduleEntry | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(where, "must be an object"))
        return None
    start = parse_timestamp(raw.get("start"))
    end = parse_timestamp(raw.get("end"))
    status = raw.get("status")
    for name, value in (("start", start), ("end", end)):
        if value is None:
            errors.append(FieldError(f"{where}.{name}", "must be an ISO-8601 timestamp with zone"))
    if not _is_int(status) or status not in _STATUSES:
        errors.append(FieldError(f"{where}.status", "must be an integer from 1 to 5"))
        status = None
    if start is not None and end is not None and start >= end:
        errors.append(FieldError(f"{where}.start", "must be before end"))
        return None
    if start is None or end is None or status is None:
        return None
    return WebhookScheduleEntry(start=start, end=end, status=ImplementationStatus(status))


def parse_status_webhook(data: object) -> StatusWebhook:
    """The validated webhook, or PayloadError listing every problem."""
    if not isinstance(data, dict):
        raise PayloadError([FieldError("body", "must be a JSON object")])
    errors: list[FieldError] = []
    site_id = data.get("siteId")
    if not isinstance(site_id, int) or isinstance(site_id, bool) or not 1 <= site_id < 2**63:
        errors.append(FieldError("siteId", "must be a positive integer"))
    schedule = data.get("schedule")
    entries: list[WebhookScheduleEntry] = []
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
    return StatusWebhook(site_id=site_id, schedule=entries)
