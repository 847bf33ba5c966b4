"""Schedule and query validation: the guide's rules mapped to its error codes.

One pure function per request kind. Each returns *every* violation it finds, in a
stable order (body-level first, then entry by entry), never raises on any input, and
reads "now" from its caller so the emulator's clock and the client's clock both work.

Decisions where the guide is silent (docs/decisions.md):
- A body that is not an object, or whose `data` is missing, not an array or empty,
  has no start date, end date or power: 30009, 30011 and 30013 on field `data`.
- `partnerAccountId` is optional; present but null/blank is 30042, not a positive
  integer is 30043.
- Strings where numbers belong, booleans, NaN and infinities are 30014; naive or
  unparsable timestamps are 30010 / 30012. Unknown extra fields are ignored.
- Every entry must start at least 5 minutes after now (30091) and end no later than
  now + 48 h (30092); an entry starting beyond 48 h is 30092 too.
- Entries overlapping each other inside one post are 30088.
- Power is positive for discharge: below −ratedCharge is 30113, above ratedDischarge 30114.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from receiver.cellect.enums import Symbol
from receiver.cellect.models import ScheduleEntry
from receiver.cellect.timestamps import parse_timestamp

MIN_LEAD = timedelta(minutes=5)
MAX_HORIZON = timedelta(hours=48)
# ExAnte reads may start a little in the past, so that "from now" computed on a
# slightly different clock is not refused.
EX_ANTE_PAST_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Violation:
    """One broken rule: the Cellect error code and the field it concerns."""

    code: int
    field: str
    message: str


@dataclass(frozen=True)
class SiteRatings:
    """What the power checks need of a site, in kW (both positive magnitudes)."""

    rated_charge_kw: float
    rated_discharge_kw: float


@dataclass
class ScheduleValidation:
    """The outcome: the parsed entries (sorted by start) when valid, else the violations."""

    violations: list[Violation] = field(default_factory=list)
    entries: list[ScheduleEntry] = field(default_factory=list)
    partner_account_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _partner_account(body: dict[str, object], result: ScheduleValidation) -> None:
    if "partnerAccountId" not in body:
        return
    raw = body["partnerAccountId"]
    if _blank(raw):
        result.violations.append(Violation(30042, "partnerAccountId", "partnerAccountId is empty"))
    elif isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        result.violations.append(
            Violation(30043, "partnerAccountId", "partnerAccountId must be a positive integer")
        )
    else:
        result.partner_account_id = raw


def _timestamp(
    entry: Mapping[str, object], name: str, where: str, codes: tuple[int, int], out: list[Violation]
) -> datetime | None:
    raw = entry.get(name)
    if _blank(raw):
        out.append(Violation(codes[0], f"{where}.{name}", f"{name} is required"))
        return None
    moment = parse_timestamp(raw)
    if moment is None:
        out.append(
            Violation(codes[1], f"{where}.{name}", f"{name} must be an ISO-8601 UTC timestamp")
        )
    return moment


def _power(entry: Mapping[str, object], where: str, out: list[Violation]) -> float | None:
    raw = entry.get("essPowerAC")
    if _blank(raw):
        out.append(Violation(30013, f"{where}.essPowerAC", "essPowerAC is required"))
        return None
    power = _number(raw)
    if power is None:
        out.append(Violation(30014, f"{where}.essPowerAC", "essPowerAC must be a finite number"))
    return power


def _entry(
    raw: object, index: int, ratings: SiteRatings, now: datetime, out: list[Violation]
) -> ScheduleEntry | None:
    where = f"data[{index}]"
    fields: Mapping[str, object] = raw if isinstance(raw, dict) else {}
    start = _timestamp(fields, "startDate", where, (30009, 30010), out)
    end = _timestamp(fields, "endDate", where, (30011, 30012), out)
    power = _power(fields, where, out)
    if start is not None and end is not None:
        if start >= end:
            out.append(Violation(30103, f"{where}.startDate", "startDate must be before endDate"))
        if start < now + MIN_LEAD:
            out.append(
                Violation(30091, f"{where}.startDate", "startDate is less than 5 minutes from now")
            )
        if max(start, end) > now + MAX_HORIZON:
            out.append(
                Violation(30092, f"{where}.endDate", "entry reaches more than 48 hours from now")
            )
    if power is not None:
        if power < -ratings.rated_charge_kw:
            out.append(
                Violation(
                    30113, f"{where}.essPowerAC", "charge power exceeds the rated charge power"
                )
            )
        elif power > ratings.rated_discharge_kw:
            out.append(
                Violation(
                    30114,
                    f"{where}.essPowerAC",
                    "discharge power exceeds the rated discharge power",
                )
            )
    if start is None or end is None or power is None:
        return None
    return ScheduleEntry(start_date=start, end_date=end, ess_power_ac=power)


def _overlaps(entries: list[tuple[int, ScheduleEntry]], out: list[Violation]) -> None:
    ordered = sorted(entries, key=lambda pair: pair[1].start_date)
    for (_, previous), (index, current) in itertools.pairwise(ordered):
        if current.start_date < previous.end_date:
            out.append(Violation(30088, f"data[{index}].startDate", "entry overlaps another entry"))


def validate_schedule(body: object, ratings: SiteRatings, now: datetime) -> ScheduleValidation:
    """Check a Store Time Series body against every rule of the guide."""
    result = ScheduleValidation()
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(body, dict):
        _partner_account(body, result)
    if not isinstance(data, list) or not data:
        result.violations.extend(
            Violation(code, "data", "data must be a non-empty array of entries")
            for code in (30009, 30011, 30013)
        )
        return result
    parsed: list[tuple[int, ScheduleEntry]] = []
    for index, raw in enumerate(data):
        entry = _entry(raw, index, ratings, now, result.violations)
        if entry is not None and entry.start_date < entry.end_date:
            parsed.append((index, entry))
    _overlaps(parsed, result.violations)
    if result.ok:
        result.entries = sorted((entry for _, entry in parsed), key=lambda e: e.start_date)
    return result


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def validate_time_series_query(
    symbol: Symbol, start_raw: str | None, end_raw: str | None, now: datetime
) -> tuple[Window | None, list[Violation]]:
    """Check the startDate/endDate query of Get Time Series for ExAnte or ExPost.

    ExAnte: the window must lie within the next 48 h (start at most 5 min in the past:
    30010; end beyond now + 48 h: 30092). ExPost: the window must lie in the past
    (30104). Missing dates are 30009/30011, unparsable 30010/30012, and a start not
    before its end 30089.
    """
    out: list[Violation] = []
    query = {"startDate": start_raw, "endDate": end_raw}
    start = _timestamp(query, "startDate", "query", (30009, 30010), out)
    end = _timestamp(query, "endDate", "query", (30011, 30012), out)
    if start is None or end is None:
        return None, out
    if start >= end:
        out.append(Violation(30089, "query.startDate", "startDate must be before endDate"))
    elif symbol is Symbol.EX_ANTE:
        if start < now - EX_ANTE_PAST_TOLERANCE:
            out.append(
                Violation(30010, "query.startDate", "ExAnte startDate must not be in the past")
            )
        if end > now + MAX_HORIZON:
            out.append(
                Violation(30092, "query.endDate", "ExAnte endDate is more than 48 hours ahead")
            )
    elif end > now:
        out.append(Violation(30104, "query.endDate", "ExPost dates must be in the past"))
    return (Window(start, end) if not out else None), out
