"""Pydantic models of every payload of the Cellect Partner API, in its wire spelling.

Attributes are snake_case; aliases carry the guide's camelCase names, so
`model_dump(by_alias=True, mode="json")` produces exactly what travels on the wire.
Where the guide is silent the shapes follow docs/decisions.md: master data and events answer
JSON arrays; availability events carry an `eventId` and their `startDate`/`endDate`
(null while open) so a poller can store each event once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from receiver.cellect.enums import (
    AvailabilityStatus,
    DowntimeType,
    EventReason,
    EventSource,
    ImplementationStatus,
)
from receiver.cellect.timestamps import format_timestamp


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


UtcDateTime = Annotated[
    AwareDatetime, AfterValidator(_to_utc), PlainSerializer(format_timestamp, return_type=str)
]


class WireModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def wire(self) -> dict[str, object]:
        """The JSON-ready dict in the API's spelling."""
        return self.model_dump(by_alias=True, mode="json")


class ScheduleEntry(WireModel):
    """One entry of a posted schedule: a constant power over [startDate, endDate)."""

    start_date: UtcDateTime
    end_date: UtcDateTime
    ess_power_ac: float = Field(alias="essPowerAC")


class SchedulePost(WireModel):
    """The body of Store Time Series (`symbol=EssPowerAC`)."""

    data: list[ScheduleEntry]
    partner_account_id: int | None = None


class TimeSeriesResult(WireModel):
    """One entry as read back by Get Time Series (ExAnte / ExPost)."""

    start_date: UtcDateTime
    end_date: UtcDateTime
    ess_power_ac: float = Field(alias="essPowerAC")
    implementation_status: ImplementationStatus


class SiteInformation(WireModel):
    """Master data of one site (SiteInformation / PortfolioOverview).

    Units (the guide's table swaps them): SoC in percent, capacity in kWh, powers in kW;
    `essPower` is positive when the site discharges.
    """

    site_id: int
    site_name: str
    country: str
    latitude: float
    longitude: float
    ess_soc: float = Field(alias="essSoC")
    ess_power: float
    ess_installed_energy_capacity: float
    ess_power_ac_rated_discharge: float = Field(alias="essPowerACRatedDischarge")
    ess_power_ac_rated_charge: float = Field(alias="essPowerACRatedCharge")


class AvailabilityEvent(WireModel):
    """One availability event of a site (`symbol=Availability`)."""

    event_id: int
    site_id: int
    site_name: str
    country: str
    latitude: float
    longitude: float
    availability_status: AvailabilityStatus
    type: DowntimeType
    reason: EventReason
    source: EventSource
    start_date: UtcDateTime
    end_date: UtcDateTime | None = None


class WebhookScheduleEntry(WireModel):
    start: UtcDateTime
    end: UtcDateTime
    status: ImplementationStatus


class StatusWebhook(WireModel):
    """The time-series status webhook: `{"siteId", "schedule": [{"start", "end", "status"}]}`."""

    site_id: int
    schedule: list[WebhookScheduleEntry]


class AccessTokenResponse(WireModel):
    access_token: str
