"""Bodies of the emulator's control API (`/_emulator`), validated by pydantic.

Bad input becomes a `ControlError`: HTTP 4xx with `{"statusCode", "errorCode",
"message", "field"}`, the field named as the client spelled it. errorCode is the
Cellect code where the partner dashboard has one (30064/30065 resource type,
30082/30083 refresh-token identifier, 30021 partner account), else 0.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.requests import Request

from receiver.cellect.enums import DowntimeType, EventReason, EventSource


class ControlError(Exception):
    """Bad input to the control API, naming the field."""

    def __init__(self, field: str, message: str, *, status: int = 400, code: int = 0) -> None:
        super().__init__(message)
        self.field, self.message, self.status, self.code = field, message, status, code

    def body(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "errorCode": self.code,
            "message": self.message,
            "field": self.field,
        }


class _Body(BaseModel):
    # Booleans are strict: "no" or 1 for a flag is more likely a mistake than a wish.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=False)


class RefreshTokenBody(_Body):
    resource_type: object = Field(None, alias="resourceType")
    partner_id: int = Field(1, alias="partnerId", ge=1)
    expires_at: AwareDatetime | None = Field(None, alias="expiresAt")
    expires_in_s: float | None = Field(None, alias="expiresInS", gt=0)
    token: str | None = Field(None, min_length=8, max_length=512, pattern=r"^[!-~]+$")


class SubscriptionBody(_Body):
    url: str = Field(min_length=1, max_length=2048)
    signing_secret: str | None = Field(None, alias="signingSecret", min_length=1)
    enabled: StrictBool = True
    partner_id: int = Field(1, alias="partnerId", ge=1)
    description: str = Field("", max_length=500)


class SubscriptionUpdate(_Body):
    url: str | None = Field(None, min_length=1, max_length=2048)
    signing_secret: str | None = Field(None, alias="signingSecret")
    enabled: StrictBool | None = None
    description: str | None = Field(None, max_length=500)


class ClockBody(_Body):
    advance_s: float | None = Field(None, ge=0, le=365 * 86400)
    speed: float | None = Field(None, ge=0, le=1_000_000)


class FaultBody(_Body):
    endpoint: str = "*"
    error_rate: float = Field(0.0, ge=0, le=1)
    latency_s: float = Field(0.0, ge=0, le=60)
    rate_limit_rate: float = Field(0.0, ge=0, le=1)
    retry_after_s: int = Field(1, ge=0, le=3600)
    drop_rate: float = Field(0.0, ge=0, le=1)
    expire_tokens: StrictBool = False


class WebhookFaultBody(_Body):
    drop_rate: float = Field(0.0, ge=0, le=1)
    duplicate_rate: float = Field(0.0, ge=0, le=1)
    reorder: StrictBool = False
    delay_s: float = Field(0.0, ge=0, le=7 * 86400)
    delay_rate: float = Field(1.0, ge=0, le=1)


class BoxBody(_Body):
    online: StrictBool | None = None
    reporting: StrictBool | None = None


class BatteryBody(_Body):
    capacity_kwh: float | None = Field(None, alias="capacityKwh", gt=0, le=1e7)
    soc_pct: float | None = Field(None, alias="socPct", ge=0, le=100)
    rated_charge_kw: float | None = Field(None, alias="ratedChargeKw", gt=0, le=1e7)
    rated_discharge_kw: float | None = Field(None, alias="ratedDischargeKw", gt=0, le=1e7)
    min_soc_pct: float | None = Field(None, alias="minSocPct", ge=0, le=100)
    max_soc_pct: float | None = Field(None, alias="maxSocPct", ge=0, le=100)
    charge_efficiency: float | None = Field(None, alias="chargeEfficiency", gt=0, le=1)
    discharge_efficiency: float | None = Field(None, alias="dischargeEfficiency", gt=0, le=1)


class InverterBody(_Body):
    factor: float = Field(ge=0, le=1)


class MeterBody(_Body):
    noise: float = Field(ge=0, le=0.5)


class OutageBody(_Body):
    type: DowntimeType = DowntimeType.UNPLANNED
    reason: EventReason = EventReason.OUTAGE
    source: EventSource = EventSource.ESS
    duration_s: float | None = Field(None, ge=0)
    starts_in_s: float = Field(0.0, ge=0, le=30 * 86400)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: object) -> M:
    """Validate a decoded JSON body; the first problem becomes a ControlError."""
    if not isinstance(payload, dict):
        raise ControlError("body", "the body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ControlError(field, f"{field}: {first['msg']}") from None


async def read_payload(request: Request) -> object:
    """The decoded JSON body ({} when empty); a ControlError when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise ControlError("body", "the body is not valid JSON") from None
