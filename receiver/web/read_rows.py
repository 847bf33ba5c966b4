"""How the read API shows what receiver.storage.reads returns: JSON objects and CSV rows.

JSON items are the read's dataclass as an object, times ISO-8601 UTC, plus the names of
coded values (status 3 → "ImplementationFailed") where a reader would otherwise need the
vendor's tables. A CSV export is a header and one row per item, the same fields
flattened (labels and annotations as JSON). Text cells that a spreadsheet would take for
a formula (starting with =, +, -, @, tab or CR) get a leading apostrophe: site names and
alert texts come from outside.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Generic, TypeVar

from receiver.cellect.enums import (
    AvailabilityStatus,
    EventReason,
    EventSource,
    ImplementationStatus,
)
from receiver.storage.reads.alerts import AlertView, NotificationView
from receiver.storage.reads.deliveries import DeliveryView
from receiver.storage.reads.energy import EnergyReportRow
from receiver.storage.reads.events import EventView
from receiver.storage.reads.measurements import MeasurementBucket, MeasurementRow
from receiver.storage.reads.schedule import ScheduleEntryView
from receiver.storage.reads.sites import SiteSummary

T = TypeVar("T")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Names the guide spells otherwise than capitalising each word of the member's name.
_SPELLING = {"ESS": "ESS", "SYSTEM_BMS": "SystemBMS"}


def _name(enum: type[IntEnum], value: int) -> str | None:
    """The guide's name of a coded value (IMPLEMENTATION_FAILED → ImplementationFailed)."""
    try:
        member = enum(value)
    except ValueError:
        return None
    return _SPELLING.get(member.name) or "".join(p.capitalize() for p in member.name.split("_"))


def plain(value: Any) -> Any:
    """`value` with datetimes as ISO-8601 strings, recursively (tuples become lists)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _object(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: plain(value) for key, value in fields.items()}


def site_json(site: SiteSummary) -> dict[str, Any]:
    return _object({**asdict(site), "available": site.available})


def entry_json(entry: ScheduleEntryView) -> dict[str, Any]:
    history = [
        {**asdict(step), "status_name": _name(ImplementationStatus, step.status)}
        for step in entry.history
    ]
    body = {**asdict(entry), "status_name": _name(ImplementationStatus, entry.status)}
    return _object({**body, "history": history})


def event_json(event: EventView) -> dict[str, Any]:
    return _object(
        {
            **asdict(event),
            "availability_status_name": _name(AvailabilityStatus, event.availability_status),
            "reason_name": _name(EventReason, event.reason),
            "source_name": _name(EventSource, event.source),
        }
    )


def energy_json(row: EnergyReportRow) -> dict[str, Any]:
    status = None if row.status is None else _name(ImplementationStatus, row.status)
    return _object({**asdict(row), "status_name": status})


def item_json(item: Any) -> dict[str, Any]:
    """Any other read's dataclass as a JSON object."""
    return _object(asdict(item))


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json.dumps(plain(value), separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


@dataclass(frozen=True)
class CsvShape(Generic[T]):
    """The header of one kind of export and how an item becomes its row."""

    header: Sequence[str]
    values: Callable[[T], Sequence[Any]]

    def row(self, item: T) -> list[Any]:
        return [_cell(value) for value in self.values(item)]


SITES_CSV: CsvShape[SiteSummary] = CsvShape(
    ("site_id", "name", "country", "present", "available", "unavailable_since", "measured_at",
     "soc_pct", "power_kw", "capacity_kwh", "rated_charge_kw", "rated_discharge_kw",
     "last_seen_at"),
    lambda s: (s.site_id, s.name, s.country, s.present, s.available, s.unavailable_since,
               s.measured_at, s.soc_pct, s.power_kw, s.capacity_kwh, s.rated_charge_kw,
               s.rated_discharge_kw, s.last_seen_at),
)  # fmt: skip
MEASUREMENTS_CSV: CsvShape[MeasurementRow] = CsvShape(
    ("measured_at", "soc_pct", "power_kw"), lambda m: (m.measured_at, m.soc_pct, m.power_kw)
)
BUCKETS_CSV: CsvShape[MeasurementBucket] = CsvShape(
    ("at", "samples", "soc_pct", "soc_min", "soc_max", "power_kw", "power_min", "power_max"),
    lambda b: (b.at, b.samples, b.soc_pct, b.soc_min, b.soc_max, b.power_kw, b.power_min,
               b.power_max),
)  # fmt: skip
SCHEDULE_CSV: CsvShape[ScheduleEntryView] = CsvShape(
    ("site_id", "start_at", "end_at", "generation", "planned_power_kw", "measured_power_kw",
     "status", "status_name", "status_at", "updated_source", "statuses", "entry_id"),
    lambda e: (e.site_id, e.start_at, e.end_at, e.generation, e.power_kw, e.measured_power_kw,
               e.status, _name(ImplementationStatus, e.status), e.status_at, e.updated_source,
               " ".join(str(s) for s in e.statuses), e.id),
)  # fmt: skip
EVENTS_CSV: CsvShape[EventView] = CsvShape(
    ("site_id", "event_id", "availability_status", "downtime_type", "reason", "source",
     "start_at", "end_at", "first_seen_at", "last_seen_at"),
    lambda e: (e.site_id, e.event_id, _name(AvailabilityStatus, e.availability_status),
               e.downtime_type, _name(EventReason, e.reason), _name(EventSource, e.source),
               e.start_at, e.end_at, e.first_seen_at, e.last_seen_at),
)  # fmt: skip
DELIVERIES_CSV: CsvShape[DeliveryView] = CsvShape(
    ("id", "received_at", "site_id", "digest", "remote_addr", "replayed_at", "body_chars"),
    lambda d: (d.id, d.received_at, d.site_id, d.digest, d.remote_addr, d.replayed_at,
               d.body_chars),
)  # fmt: skip
ALERTS_CSV: CsvShape[AlertView] = CsvShape(
    ("id", "rule", "severity", "state", "starts_at", "ends_at", "last_notified_at", "labels",
     "annotations"),
    lambda a: (a.id, a.rule, a.severity, a.state, a.starts_at, a.ends_at, a.last_notified_at,
               a.labels, a.annotations),
)  # fmt: skip
NOTIFICATIONS_CSV: CsvShape[NotificationView] = CsvShape(
    ("id", "created_at", "group_key", "status", "attempts", "sent_at", "last_error", "title"),
    lambda n: (n.id, n.created_at, n.group_key, n.status, n.attempts, n.sent_at, n.last_error,
               n.title),
)  # fmt: skip
ENERGY_CSV: CsvShape[EnergyReportRow] = CsvShape(
    ("row", "site_id", "site_name", "start_at", "end_at", "generation", "status", "status_name",
     "method", "planned_kwh", "delivered_kwh", "deviation_kwh", "tracking_error", "entries",
     "failures", "availability_share"),
    lambda r: (r.row, r.site_id, r.site_name, r.start_at, r.end_at, r.generation, r.status,
               None if r.status is None else _name(ImplementationStatus, r.status), r.method,
               r.planned_kwh, r.delivered_kwh, r.deviation_kwh, r.tracking_error, r.entries,
               r.failures, r.availability_share),
)  # fmt: skip
