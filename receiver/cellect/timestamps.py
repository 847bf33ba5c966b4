"""Strict parsing and canonical formatting of the API's UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string with a zone; None when it is not one.

    Naive timestamps are refused: the guide says every point in time is UTC, and a
    naive value is exactly the mistake (local time sent as UTC) worth catching.
    """
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > 64:
        return None
    if "T" not in value and " " not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+14:00 lies before datetime.min in UTC
        return None


def format_timestamp(moment: datetime) -> str:
    """`2023-01-17T01:00:00Z`, with milliseconds only when they are not zero."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
