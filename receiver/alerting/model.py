"""The alerting engine's vocabulary: the fleet snapshot rules read, and the alerts they produce.

`FleetView` is a plain, frozen snapshot of what the monitor knows (built by the service
from the database and the pollers); `Thresholds` carries the configurable limits; `Alert`
is one condition that holds now. Nothing here does I/O, so the rules are pure functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from receiver.settings import Settings

# Labels that describe an alert but do not identify it: renaming a site must not make
# its alerts resolve and fire again.
DESCRIPTIVE_LABELS = frozenset({"site_name"})


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Downtime:
    """Why a site is unavailable, from its availability event (None fields: unknown)."""

    planned: bool
    reason: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class ImplementationFailure:
    """One schedule entry the Cellect Box reported as ImplementationFailed (status 3)."""

    entry_start: datetime
    entry_end: datetime
    at: datetime


@dataclass(frozen=True)
class FailureRun:
    """A site's run of ImplementationFailed reports: the first and the latest.

    A run ends once a whole failure hold (an hour) passes without a report; the next
    report starts a new one. One run per site keeps a storm of failures (thousands of
    entries at once) to one alert per site, as the Prometheus rule has it.
    """

    first: ImplementationFailure
    latest: ImplementationFailure


@dataclass(frozen=True)
class SiteView:
    """What the monitor knows about one site right now."""

    site_id: int
    name: str
    soc_ratio: float | None = None
    available: bool = True
    downtime: Downtime | None = None
    unavailable_since: datetime | None = None
    last_update: datetime | None = None
    horizon_end: datetime | None = None  # end of the last planned entry, if any
    in_progress_near_start: tuple[datetime, ...] = ()  # starts of entries still InProgress
    failure_run: FailureRun | None = None  # the latest run of failures, if any
    # False: the latest PortfolioOverview left the site out (Cellect has no live data:
    # its box is offline or not reporting), so its data goes stale for that reason.
    in_portfolio: bool = True


@dataclass(frozen=True)
class ServiceView:
    """The monitor's own health towards the Cellect Partner API and its webhooks."""

    api_last_success: datetime | None = None
    api_consecutive_failures: int = 0
    api_failing_since: datetime | None = None
    api_circuit_open: bool = False  # the client's circuit breaker holds requests back
    auth_failing: bool = False
    auth_failing_since: datetime | None = None
    refresh_token_expires_at: datetime | None = None
    last_webhook_at: datetime | None = None
    started_at: datetime | None = None  # silence is only judged after this much uptime
    polling: bool = True  # False in webhooks-only mode: no master data to go stale
    schedules_exist: bool = False


@dataclass(frozen=True)
class FleetView:
    sites: tuple[SiteView, ...] = ()
    service: ServiceView = field(default_factory=ServiceView)


@dataclass(frozen=True)
class Thresholds:
    """The limits the rules apply; `from_settings` reads them from the CELLECT_ settings."""

    soc_low: float = 0.10
    soc_high: float = 0.95
    site_soc: dict[int, tuple[float, float]] = field(default_factory=dict)
    horizon_short_s: float = 6 * 3600.0
    in_progress_stuck_s: float = 300.0
    stale_after_s: float = 600.0
    webhook_silence_s: float = 3600.0
    refresh_token_expiring_s: float = 7 * 86400.0
    api_down_after_s: float = 300.0
    api_down_failures: int = 3
    failure_hold_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            soc_low=settings.soc_low,
            soc_high=settings.soc_high,
            site_soc=dict(settings.site_soc_thresholds),
            horizon_short_s=settings.horizon_short_s,
            in_progress_stuck_s=settings.in_progress_stuck_s,
            stale_after_s=settings.stale_after_s,
            webhook_silence_s=settings.webhook_silence_s,
            refresh_token_expiring_s=settings.refresh_token_expiring_s,
        )

    def soc_limits(self, site_id: int) -> tuple[float, float]:
        return self.site_soc.get(site_id, (self.soc_low, self.soc_high))


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """A stable identity for rule + identifying labels (hex, 32 characters)."""
    identity = {k: v for k, v in labels.items() if k not in DESCRIPTIVE_LABELS}
    raw = json.dumps([rule, sorted(identity.items())], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    """One condition that holds now: what happened, since when, and what to check."""

    rule: str
    severity: Severity
    labels: dict[str, str]
    summary: str
    description: str
    since: datetime

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)

    @property
    def site_level(self) -> bool:
        """Site alerts are inhibited while the API itself is down (their data is stale)."""
        return "site_id" in self.labels

    def annotations(self) -> dict[str, str]:
        return {"summary": self.summary, "description": self.description}
