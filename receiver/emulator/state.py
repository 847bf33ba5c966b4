"""Plain records shared by the emulator's cloud, boxes and webhook sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from receiver.cellect.enums import DowntimeType, EventReason, EventSource, ImplementationStatus


@dataclass(frozen=True)
class SiteSpec:
    """A site of the demo portfolio: identity, location and battery ratings.

    Capacity in kWh, powers in kW (positive magnitudes), SoC limits in percent,
    efficiencies as fractions (charge: AC → stored; discharge: stored → AC). `taper_pct`:
    the band (percentage points of SoC) inside each limit where the power tapers to 0
    (receiver.emulator.battery); 0, no taper.
    """

    site_id: int
    partner_id: int
    name: str
    country: str
    latitude: float
    longitude: float
    capacity_kwh: float
    rated_charge_kw: float
    rated_discharge_kw: float
    initial_soc_pct: float = 50.0
    min_soc_pct: float = 5.0
    max_soc_pct: float = 95.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    taper_pct: float = 0.0


@dataclass
class StoredEntry:
    """A schedule entry as the cloud and the box know it."""

    entry_id: int
    post_id: int
    start: datetime
    end: datetime
    power_kw: float
    status: ImplementationStatus
    status_at: datetime
    transferred: bool = False


@dataclass(frozen=True)
class StatusChange:
    """One entry's new status: what a webhook reports, batched per site and post."""

    site_id: int
    post_id: int
    entry_id: int
    start: datetime
    end: datetime
    status: ImplementationStatus
    at: datetime


@dataclass
class Outage:
    """A period of unavailability of a site, published as Availability events."""

    event_id: int
    site_id: int
    downtime_type: DowntimeType
    reason: EventReason
    source: EventSource
    start: datetime
    end: datetime | None
    announced_at: datetime


@dataclass
class Subscription:
    """A partner's webhook subscription (the partner dashboard's "Notifications")."""

    subscription_id: int
    partner_id: int
    url: str
    signing_secret: str | None = None
    enabled: bool = True
    created_at: datetime | None = None
    description: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)
