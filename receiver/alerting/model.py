"""The alerting engine's vocabulary: the fleet snapshot rules read, and the alerts they produce.

`FleetView` is a plain, frozen snapshot of what the monitor knows (built by
`receiver.fleet.picture.Fleet` from polls and webhooks, restored from the database
after a restart); `Thresholds` carries the configurable limits; `Alert`
is one condition that holds now. Nothing here does I/O, so the rules are pure functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
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
class PlanBreach:
    """Where a site's plan first leaves the usable SoC range (receiver.analytics.trajectory):
    when, during which entry (its start, end and planned kW), at which limit ("empty" or
    "full"), the AC energy from that entry on the battery cannot deliver, and since when
    the forecasts have said so."""

    at: datetime
    entry_start: datetime
    entry_end: datetime
    power_kw: float
    limit: str
    shortfall_kwh: float
    since: datetime


@dataclass(frozen=True)
class SiteView:
    """What the monitor knows about one site right now."""

    site_id: int
    name: str
    soc_ratio: float | None = None
    available: bool = True
    downtime: Downtime | None = None
    unavailable_since: datetime | None = None
    availability_at: datetime | None = None  # when the availability was last polled
    last_update: datetime | None = None  # when the site was last in a portfolio poll
    # True once any schedule entry of the site is known: only such a site has a horizon.
    scheduled: bool = False
    horizon_end: datetime | None = None  # end of the last planned entry ahead, if any
    in_progress_near_start: tuple[datetime, ...] = ()  # starts of entries still InProgress
    failure_run: FailureRun | None = None  # the latest run of failures, if any
    # Σ|delivered − planned| / Σ|planned| over the site's last entries (None: none yet).
    tracking_error: float | None = None
    tracking_at: datetime | None = None  # the end of the newest entry it counts
    # False: the latest PortfolioOverview left the site out (Cellect has no live data:
    # its box is offline or not reporting), so its data goes stale for that reason.
    in_portfolio: bool = True
    plan_breach: PlanBreach | None = None  # None: the plan holds (or nothing to judge)


@dataclass(frozen=True)
class PollerView:
    """One running poller: how often it runs and when it last succeeded."""

    name: str
    interval_s: float
    last_success: datetime | None = None


@dataclass(frozen=True)
class ServiceView:
    """The monitor's own health towards the Cellect Partner API and its webhooks."""

    started_at: datetime | None = None  # silences and overdue pollers count from here
    pollers: tuple[PollerView, ...] = ()  # none in webhooks-only mode
    # Since when an endpoint of the Cellect API (the one failing longest) fails without an
    # answer (any HTTP status below 500 is one: a 429 or a 401 is the API up); None while
    # every endpoint answers.
    api_failing_since: datetime | None = None
    auth_refused_since: datetime | None = None  # None: the credentials are not refused
    refresh_token_expires_at: datetime | None = None
    last_webhook_at: datetime | None = None  # the last accepted webhook delivery

    @property
    def polling(self) -> bool:
        """False in webhooks-only mode (no refresh token): nothing is polled."""
        return bool(self.pollers)

    @property
    def auth_failing(self) -> bool:
        return self.auth_refused_since is not None


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
    failure_hold_s: float = 3600.0
    plan_breach_critical_s: float = 3600.0
    tracking_deviation_ratio: float = 0.10
    tracking_window_entries: int = 16

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
            api_down_after_s=settings.api_down_after_s,
            failure_hold_s=settings.failure_hold_s,
            plan_breach_critical_s=settings.plan_breach_critical_s,
            tracking_deviation_ratio=settings.tracking_deviation_ratio,
            tracking_window_entries=settings.tracking_window_entries,
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
    runbook_url: str = ""

    @cached_property
    def fingerprint(self) -> str:
        # Cached: the hold (`for`) and the engine both key alerts by it, every cycle.
        return fingerprint(self.rule, self.labels)

    def annotations(self) -> dict[str, str]:
        notes = {"summary": self.summary, "description": self.description}
        if self.runbook_url:
            notes["runbook_url"] = self.runbook_url
        return notes
