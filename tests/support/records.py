"""Vendor records for tests that write history through the production write functions."""

from __future__ import annotations

from datetime import datetime

from receiver.cellect.enums import AvailabilityStatus, DowntimeType, EventReason, EventSource
from receiver.cellect.models import AvailabilityEvent, SiteInformation


def site_info(
    site_id: int, *, soc: float = 50.0, power: float = 0.0, name: str = ""
) -> SiteInformation:
    """A vendor SiteInformation with plausible defaults."""
    return SiteInformation(
        site_id=site_id,
        site_name=name or f"Site {site_id}",
        country="ES",
        latitude=40.4,
        longitude=-3.7,
        ess_soc=soc,
        ess_power=power,
        ess_installed_energy_capacity=200.0,
        ess_power_ac_rated_discharge=100.0,
        ess_power_ac_rated_charge=90.0,
    )


def outage(site_id: int, event_id: int, start: datetime, end: datetime | None) -> AvailabilityEvent:
    """An unplanned inverter outage of a site, open while `end` is None."""
    return AvailabilityEvent(
        event_id=event_id, site_id=site_id, site_name=f"Site {site_id}", country="ES",
        latitude=40.4, longitude=-3.7, availability_status=AvailabilityStatus.NOT_AVAILABLE,
        type=DowntimeType.UNPLANNED, reason=EventReason.OUTAGE, source=EventSource.INVERTER,
        start_date=start, end_date=end,
    )  # fmt: skip
