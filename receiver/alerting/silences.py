"""Silences: mute alerts matching labels for a while, from the CLI or the HTTP API.

A silence has matchers (`label → value`, all must hold; `rule` and `severity` match
the alert's rule and severity, any other name one of its labels, e.g. `site_id`), a
start, an end, who made it and why. The engine skips muted alerts; an expired silence
stops muting at once (the alert is then told like a new one, if never told before).

The HTTP routes are `receiver.web.silences`; they and the CLI build the same
`SilenceIn` and use the same `SilenceService`, so they keep the same bounds: a silence
ends at most a year ahead (`MAX_SILENCE`), lasts at least a second, and its texts are
bounded and free of control characters (which PostgreSQL refuses, NUL above all).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine

from receiver.storage.alert_tables import Silence
from receiver.storage.alerts import active_silences, create_silence, expire_silence
from receiver.storage.engine import session_factory

if TYPE_CHECKING:
    from receiver.cellect.clock import Clock

MAX_SILENCE = timedelta(days=365)
MIN_SILENCE = timedelta(seconds=1)
MAX_MATCHERS = 32
MAX_SILENCE_ID = 2**31 - 1  # the id column is a 32-bit INTEGER on PostgreSQL
# ASCII digits only: str.isdigit() and \d also take "²" or "٣", which int() then refuses.
_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SILENCE_ID = re.compile(r"[0-9]{1,10}")
_LINE_BREAKS = frozenset("\t\n\r")


class InvalidSilence(ValueError):
    """Input a silence cannot be made from; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1h30m` → a timedelta from 1 s to a year (ValueError otherwise)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError("a duration like 90s, 30m, 2h, 1d or 1h30m")
    # Bounded digits, so the sum is finite and small before timedelta sees it.
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < MIN_SILENCE.total_seconds():
        raise ValueError("must be at least 1s (longer than zero)")
    if seconds > MAX_SILENCE.total_seconds():
        raise ValueError("must be at most 365d (a year)")
    return timedelta(seconds=seconds)


def parse_silence_id(text: str) -> int:
    """A silence id as given in a path or on the command line (ValueError otherwise)."""
    if not _SILENCE_ID.fullmatch(text) or int(text) > MAX_SILENCE_ID:
        raise ValueError(f"must be a silence id (an integer from 0 to {MAX_SILENCE_ID})")
    return int(text)


def _plain_text(value: str, *, lines: bool = False) -> str:
    """`value` unless it holds control characters (line breaks and tabs if `lines`) or
    lone surrogates, which the databases cannot store as text."""
    for char in value:
        if lines and char in _LINE_BREAKS:
            continue
        if char < " " or "\x7f" <= char < "\xa0" or "\ud800" <= char <= "\udfff":
            raise ValueError("must not contain control characters")
    return value


class SilenceIn(BaseModel):
    """A silence as the API and the CLI accept it: exactly one of duration and ends_at."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[str, str] = Field(min_length=1, max_length=MAX_MATCHERS)
    duration: str | None = Field(None, max_length=64)
    ends_at: datetime | None = Field(None, strict=True)
    comment: str = Field(min_length=1, max_length=1000)
    created_by: str = Field("api", min_length=1, max_length=200)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _LABEL_NAME.fullmatch(name):
                raise ValueError("label names are letters, digits and _ (at most 64)")
            if not 1 <= len(text) <= 200:
                raise ValueError("label values are 1 to 200 characters long")
            _plain_text(text)
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("needs a timezone (e.g. Z or +00:00)")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
            raise ValueError("must be at most a year ahead") from None

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str) -> str:
        return _plain_text(value, lines=True)

    @field_validator("created_by")
    @classmethod
    def _created_by(cls, value: str) -> str:
        return _plain_text(value)

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """[now, end) of the silence, or InvalidSilence naming the field at fault."""
        if self.duration is not None and self.ends_at is not None:
            raise InvalidSilence("ends_at", "give duration or ends_at, not both")
        if self.duration is not None:
            return now, now + parse_duration(self.duration)
        if self.ends_at is None:
            raise InvalidSilence("duration", "give duration or ends_at")
        if self.ends_at <= now:
            raise InvalidSilence("ends_at", "must be in the future")
        if self.ends_at - now > MAX_SILENCE:
            raise InvalidSilence("ends_at", "must be at most a year (365d) ahead")
        return now, self.ends_at


def silence_json(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": silence.matchers,
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
    }


class SilenceService:
    """The silence operations on a database, shared by the HTTP API and the CLI (blocking)."""

    def __init__(self, store: Engine, clock: Clock) -> None:
        self._sessions, self.clock = session_factory(store), clock

    def create(self, spec: SilenceIn) -> Silence:
        starts, ends = spec.window(self.clock.now())
        with self._sessions() as session, session.begin():
            return create_silence(
                session=session, matchers=spec.matchers, starts_at=starts, ends_at=ends,
                created_by=spec.created_by, comment=spec.comment,
            )  # fmt: skip

    def active(self) -> list[Silence]:
        with self._sessions() as session:
            return active_silences(session=session, now=self.clock.now())

    def expire(self, silence_id: int) -> bool:
        with self._sessions() as session, session.begin():
            return expire_silence(session=session, silence_id=silence_id, now=self.clock.now())
