"""SQLModel tables of the alerting engine: alerts, silences, the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from receiver.storage.types import UtcDateTime


class AlertRecord(SQLModel, table=True):
    """One alert instance (rule + labels), firing or resolved."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("fingerprint", name="uq_alerts_fingerprint"),
        Index("ix_alerts_state_rule", "state", "rule"),
    )
    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(sa_type=String(64))
    rule: str
    severity: str
    labels: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    annotations: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    state: str = Field(sa_type=String(16))  # 'firing' | 'resolved'
    starts_at: datetime = Field(sa_type=UtcDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_notified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Silence(SQLModel, table=True):
    """Mutes the alerts whose labels match every `label → value` of `matchers` in a window."""

    __tablename__ = "silences"
    id: int | None = Field(default=None, primary_key=True)
    matchers: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    starts_at: datetime = Field(sa_type=UtcDateTime)
    ends_at: datetime = Field(sa_type=UtcDateTime, index=True)
    created_by: str
    comment: str


class OutboxMessage(SQLModel, table=True):
    """A notification waiting to be delivered (or delivered, or given up on)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status_next", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_type=UtcDateTime)
    group_key: str
    title: str
    body: str = Field(sa_type=Text)
    tags: list[Any] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="pending", sa_type=String(16))  # 'pending' | 'sent' | 'dead'
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    # A short reason only: never the notifier URL or anything else holding a secret.
    last_error: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
