"""SQLModel tables of the history: sites, measurements, events, schedules, webhook deliveries.

Families follow `XBase` (the shared columns) / `X(table=True)` / `XPublic` (the read
model). Every datetime column is `UtcDateTime`: aware UTC in and out on both databases.
Only measurements reference `sites` by foreign key: webhooks and event polls may name a
site before the portfolio poll has seen it, and must still be stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from receiver.storage.types import UtcDateTime

# Big tables get 64-bit keys; SQLite only auto-increments a plain INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class SiteBase(SQLModel):
    site_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str
    country: str
    latitude: float
    longitude: float
    capacity_kwh: float
    rated_charge_kw: float
    rated_discharge_kw: float
    first_seen_at: datetime = Field(sa_type=UtcDateTime)
    last_seen_at: datetime = Field(sa_type=UtcDateTime)
    present: bool = True


class Site(SiteBase, table=True):
    """One site of the portfolio; `present` turns false when it leaves the portfolio."""

    __tablename__ = "sites"


class MeasurementBase(SQLModel):
    site_id: int = Field(foreign_key="sites.site_id")
    measured_at: datetime = Field(sa_type=UtcDateTime)
    soc_pct: float
    power_kw: float


class Measurement(MeasurementBase, table=True):
    """State of charge and power of one site at one moment (power > 0: discharge)."""

    __tablename__ = "measurements"
    # The unique constraint's index also serves "one site over a time range".
    __table_args__ = (
        UniqueConstraint("site_id", "measured_at", name="uq_measurements_site_time"),
        Index("ix_measurements_measured_at", "measured_at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)


class AvailabilityEventBase(SQLModel):
    site_id: int
    event_id: int
    availability_status: int
    downtime_type: str
    reason: int
    source: int
    start_at: datetime = Field(sa_type=UtcDateTime)
    end_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    first_seen_at: datetime = Field(sa_type=UtcDateTime)
    last_seen_at: datetime = Field(sa_type=UtcDateTime)


class AvailabilityEventRecord(AvailabilityEventBase, table=True):
    """One vendor availability event, stored once however often it is polled."""

    __tablename__ = "availability_events"
    __table_args__ = (
        UniqueConstraint("site_id", "event_id", name="uq_availability_events_site_event"),
        Index("ix_availability_events_site_start", "site_id", "start_at"),
    )
    id: int | None = Field(default=None, primary_key=True)


class ScheduleEntryBase(SQLModel):
    site_id: int
    start_at: datetime = Field(sa_type=UtcDateTime)
    end_at: datetime = Field(sa_type=UtcDateTime)
    power_kw: float | None = None
    # 0, 1, 2, …: the entries of one slot (site, start, end), in the order first heard
    # of; a re-planned slot gets a new one (receiver.storage.status.rule).
    generation: int = 0
    status: int
    status_at: datetime = Field(sa_type=UtcDateTime)
    updated_source: str = Field(sa_type=String(16))
    statuses_seen: int = 0  # bit 1 << s for each status s the entry reported
    statuses_unconfirmed: int = 0  # of those, the ones only a poll reported so far


class ScheduleEntryRecord(ScheduleEntryBase, table=True):
    """One entry (one generation of a slot) of one site and its furthest status."""

    __tablename__ = "schedule_entries"
    # The unique index leads with (site_id, start_at), so it serves the range queries and
    # a site's horizon too: every index is written by each webhook delivery's entries
    # (migration 0002 dropped a (site_id, end_at) one for that reason).
    __table_args__ = (
        UniqueConstraint(
            *("site_id", "start_at", "end_at", "generation"),
            name="uq_schedule_entries_slot_generation",
        ),
        Index("ix_schedule_entries_status_start", "status", "start_at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)


class ScheduleStatusChange(SQLModel, table=True):
    """One step of an entry's status history, from a webhook delivery or a poll."""

    __tablename__ = "schedule_status_changes"
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    entry_id: int = Field(
        sa_type=BigId, foreign_key="schedule_entries.id", ondelete="CASCADE", index=True
    )
    status: int
    observed_at: datetime = Field(sa_type=UtcDateTime)
    source: str = Field(sa_type=String(16))
    # No foreign key: deliveries are pruned on their own schedule, history may outlive them.
    delivery_id: int | None = Field(default=None, sa_type=BigInteger)


class WebhookDelivery(SQLModel, table=True):
    """One raw webhook delivery as received, for audit and replay; unique by payload digest."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("digest", name="uq_webhook_deliveries_digest"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    received_at: datetime = Field(sa_type=UtcDateTime, index=True)
    digest: str = Field(sa_type=String(64))
    site_id: int
    body: str = Field(sa_type=Text)
    remote_addr: str | None = None
    replayed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class EntryEnergy(SQLModel, table=True):
    """Planned against delivered energy of one entry that has run (one generation of a
    slot), estimated once after its end (receiver.analytics.delivery); kWh, + discharge.
    `delivered_kwh` is null when nothing was measured (`method` "none")."""

    __tablename__ = "entry_energy"
    __table_args__ = (
        UniqueConstraint(
            *("site_id", "start_at", "end_at", "generation"), name="uq_entry_energy_entry"
        ),
        Index("ix_entry_energy_end_at", "end_at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    site_id: int
    start_at: datetime = Field(sa_type=UtcDateTime)
    end_at: datetime = Field(sa_type=UtcDateTime)
    generation: int = 0
    planned_kwh: float
    delivered_kwh: float | None = None
    method: str = Field(sa_type=String(8))
    samples: int = 0
    computed_at: datetime = Field(sa_type=UtcDateTime)
