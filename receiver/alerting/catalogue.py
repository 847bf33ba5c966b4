"""The alert catalogue: one entry per alert, the truth both alert engines answer to.

cellect-monitor judges its alerts twice over: the built-in engine (`rules.py`, through
Apprise) and the Prometheus rules shipped in `alerts/cellect.rules.yml`. Each entry here
names an alert, its severities, its hold (`for_s`: how long the condition must hold
before the alert fires, Prometheus' `for`), the setting whose value it compares with
(exported as `cellect_alert_threshold_seconds{rule}` so the Prometheus rules follow the
settings), its runbook section in docs/alerts.md, and which engines judge it.

The built-in engine reads its holds from here; `tests/test_alert_rules.py` checks the
rules file against this catalogue in both directions, and
`tests/prometheus/test_engines_agree.py` runs the same scenarios through both engines.
MonitorDown and AlertLeaderMissing are Prometheus' alone: a monitor cannot report that it
is down, nor the built-in engine that no replica runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from receiver.alerting.model import Severity

if TYPE_CHECKING:
    from receiver.settings import Settings

# The public home of docs/alerts.md: one constant to change where the docs are hosted.
RUNBOOK_BASE_URL = "https://github.com/cellect-monitor/cellect-monitor/blob/main/docs/alerts.md"
THRESHOLD_METRIC = "cellect_alert_threshold_seconds"
# Thresholds that are shares, not durations (TrackingDeviation), by rule like the above.
RATIO_THRESHOLD_METRIC = "cellect_alert_threshold_ratio"


class Engines(StrEnum):
    BOTH = "both"
    PROMETHEUS = "prometheus"  # the built-in engine cannot judge it (MonitorDown)


class Scope(StrEnum):
    SITE = "site"  # labels site_id and site_name; muted while ApiDown fires
    SERVICE = "service"


@dataclass(frozen=True)
class RuleSpec:
    """One alert of the catalogue."""

    name: str
    severities: tuple[Severity, ...]
    scope: Scope
    for_s: float = 0.0
    # The Settings field (CELLECT_<NAME>) the condition compares with, if any.
    setting: str | None = None
    # Where the Prometheus rule reads that setting: THRESHOLD_METRIC{rule="<name>"}, a
    # per-site gauge, or None when the monitor applies it to the series the rule reads.
    # (Without a setting there is nothing to read.)
    gauge: str | None = THRESHOLD_METRIC
    engines: Engines = Engines.BOTH

    @property
    def anchor(self) -> str:
        """The runbook section's anchor in docs/alerts.md (a heading named after the alert)."""
        return self.name.lower()

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_BASE_URL}#{self.anchor}"

    @property
    def builtin(self) -> bool:
        return self.engines is Engines.BOTH

    @property
    def exported_threshold(self) -> bool:
        """Whether the monitor exports the setting as THRESHOLD_METRIC{rule=name}."""
        return self.setting is not None and self.gauge == THRESHOLD_METRIC


CRITICAL, WARNING = (Severity.CRITICAL,), (Severity.WARNING,)
SITE, SERVICE = Scope.SITE, Scope.SERVICE
SOC_LOW_GAUGE = "cellect_site_soc_low_threshold_ratio"
SOC_HIGH_GAUGE = "cellect_site_soc_high_threshold_ratio"

CATALOGUE: tuple[RuleSpec, ...] = (
    RuleSpec("ImplementationFailed", CRITICAL, SITE, setting="failure_hold_s"),
    # An availability event is the vendor's statement, not a noisy measurement: no hold.
    RuleSpec("SiteUnavailable", (Severity.CRITICAL, Severity.WARNING), SITE),
    RuleSpec("SoCLow", WARNING, SITE, for_s=600, setting="soc_low", gauge=SOC_LOW_GAUGE),
    RuleSpec("SoCHigh", WARNING, SITE, for_s=600, setting="soc_high", gauge=SOC_HIGH_GAUGE),
    RuleSpec("ScheduleHorizonShort", WARNING, SITE, for_s=900, setting="horizon_short_s"),
    # The monitor counts the entries near their start into the gauge the rule reads.
    RuleSpec(
        "InProgressStuck", WARNING, SITE, for_s=120, setting="in_progress_stuck_s", gauge=None
    ),
    # The plan's forecast leaves the usable SoC range: critical when that is nearer than
    # the threshold (its own rule per severity in Prometheus, label breach=soon|later).
    RuleSpec(
        "ScheduleInfeasible",
        (Severity.CRITICAL, Severity.WARNING),
        SITE,
        setting="plan_breach_critical_s",
    ),
    # A site alert; also fleet-wide, without a site, when no portfolio lists any site.
    RuleSpec("DataStale", WARNING, SITE, setting="stale_after_s"),
    # The gauge is an average over the last N entries already: no hold on top.
    RuleSpec(
        "TrackingDeviation",
        WARNING,
        SITE,
        setting="tracking_deviation_ratio",
        gauge=RATIO_THRESHOLD_METRIC,
    ),
    RuleSpec("ApiDown", CRITICAL, SERVICE, setting="api_down_after_s"),
    RuleSpec("AuthFailing", CRITICAL, SERVICE, for_s=300),
    RuleSpec("RefreshTokenExpiring", WARNING, SERVICE, setting="refresh_token_expiring_s"),
    RuleSpec("WebhookSilence", WARNING, SERVICE, setting="webhook_silence_s"),
    RuleSpec("MonitorDown", CRITICAL, SERVICE, for_s=120, engines=Engines.PROMETHEUS),
    # Several replicas: nobody holds the `alerts` lease, so the built-in engine is silent.
    RuleSpec("AlertLeaderMissing", CRITICAL, SERVICE, for_s=120, engines=Engines.PROMETHEUS),
)
BY_NAME = {spec.name: spec for spec in CATALOGUE}


def spec(name: str) -> RuleSpec:
    """The catalogue entry of alert `name` (KeyError for an unknown alert)."""
    return BY_NAME[name]


def builtin_pairs() -> tuple[tuple[str, str], ...]:
    """(rule, severity) of every alert the built-in engine can fire."""
    return tuple((s.name, str(sev)) for s in CATALOGUE if s.builtin for sev in s.severities)


def threshold_values(settings: Settings) -> dict[str, float]:
    """{rule: value} of every threshold exported as THRESHOLD_METRIC, from the settings."""
    return {
        s.name: float(getattr(settings, s.setting))
        for s in CATALOGUE
        if s.exported_threshold and s.setting is not None
    }


def ratio_threshold_values(settings: Settings) -> dict[str, float]:
    """{rule: share} of every threshold exported as RATIO_THRESHOLD_METRIC."""
    return {
        s.name: float(getattr(settings, s.setting))
        for s in CATALOGUE
        if s.gauge == RATIO_THRESHOLD_METRIC and s.setting is not None
    }
