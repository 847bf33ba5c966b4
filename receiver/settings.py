"""cellect-monitor's settings: one pydantic-settings class, environment prefix CELLECT_.

Every field is read from `CELLECT_<NAME>` (or a `.env` file); the names are part of
the public interface, documented in the README. Secrets are `SecretStr`, so they
print as `**********` wherever a settings object ends up in a log or a traceback.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite:///cellect-monitor.db"
MIN_ADMIN_TOKEN_LENGTH = 16


def _split(value: Any) -> Any:
    """Accept `a b`, `a,b` or a JSON-free list for the list-valued settings."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


def _network(text: str) -> str:
    """`10.0.0.1` or `10.0.0.0/8` (host bits allowed) → its network; nothing else."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError("each entry must be an IP address or network, e.g. 10.0.0.0/8") from None


def normalise_database_url(url: str) -> str:
    """Map the common spellings of PostgreSQL URLs onto the psycopg 3 driver."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not (url.startswith("sqlite") or url.startswith("postgresql+psycopg://")):
        raise ValueError("must be an sqlite:/// or postgresql:// URL")
    return url


class Settings(BaseSettings):
    """All of cellect-monitor's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="CELLECT_", env_file=".env", extra="ignore", validate_default=True
    )

    # The vendor.
    api_url: str = "http://127.0.0.1:8081"
    token_url: str = "http://127.0.0.1:8081"
    refresh_token: SecretStr | None = None
    # The vendor's refresh tokens are opaque: only the partner dashboard shows when one
    # expires, so the operator copies it here for the RefreshTokenExpiring alert.
    refresh_token_expires_at: AwareDatetime | None = None
    http_timeout_s: float = Field(10.0, gt=0)
    retry_attempts: int = Field(5, ge=1, le=20)
    retry_max_s: float = Field(60.0, gt=0)
    # The circuit breaker (receiver.vendor.circuit): this many failures in a row (5xx, timeouts,
    # connection errors) stop all requests, but one probe per cool-down (clock seconds).
    circuit_failure_threshold: int = Field(5, ge=1, le=1000)
    circuit_cooldown_s: float = Field(30.0, gt=0, le=3600)

    # Storage.
    database_url: str = DEFAULT_SQLITE_URL
    retention_days: int = Field(90, ge=1)

    # The HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = None
    # Proxies whose X-Forwarded-For/-Proto are believed (addresses or networks); none by
    # default, so a client cannot choose the address the webhook allow-list judges.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = []

    # The operator API (/api/): its bearer token; generated and kept in the database
    # when unset. It travels in a header, hence printable ASCII without spaces.
    admin_token: SecretStr | None = None

    # Webhook receiver.
    webhook_secret: SecretStr | None = None
    webhook_auth_disabled: bool = False
    webhook_signing_secrets: Annotated[list[SecretStr], NoDecode] = []
    webhook_allowed_ips: Annotated[list[str], NoDecode] = []
    webhook_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Sites tracked live without polling (webhooks only): any sender may name any id.
    max_sites: int = Field(100_000, ge=1)
    # Demos and tests: run on the emulated time of an emulator in another process
    # (its GET /_emulator/clock), as the embedded demo runs on the emulator's clock.
    clock_url: str | None = None
    # Bounds of the ingest queue, and how long a request waits for its commit (real s).
    webhook_queue_max: int = Field(10_000, ge=1)
    webhook_queue_max_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    webhook_commit_timeout_s: float = Field(10.0, gt=0)

    # Pollers (seconds of the clock the monitor runs on).
    portfolio_interval_s: float = Field(60.0, gt=0)
    events_interval_s: float = Field(60.0, gt=0)
    ex_ante_interval_s: float = Field(300.0, gt=0)
    ex_post_interval_s: float = Field(900.0, gt=0)
    poll_jitter: float = Field(0.1, ge=0, le=1)
    poll_concurrency: int = Field(8, ge=1, le=256)
    stale_after_s: float = Field(600.0, gt=0)

    # Alerting.
    apprise_urls: Annotated[list[SecretStr], NoDecode] = []
    apprise_config: Path | None = None
    soc_low: float = Field(0.10, ge=0, le=1)
    soc_high: float = Field(0.95, ge=0, le=1)
    site_soc_thresholds: dict[int, tuple[float, float]] = {}
    horizon_short_s: float = Field(6 * 3600.0, gt=0)
    in_progress_stuck_s: float = Field(300.0, gt=0)
    webhook_silence_s: float = Field(3600.0, gt=0)
    refresh_token_expiring_s: float = Field(7 * 86400.0, gt=0)
    # ImplementationFailed keeps firing this long after a site's latest failure report.
    failure_hold_s: float = Field(3600.0, gt=0)
    # ApiDown: a poller overdue by max(this, two intervals) and no answer for this long.
    api_down_after_s: float = Field(300.0, gt=0)
    # ScheduleInfeasible and the plan's SoC trajectory (receiver/analytics/trajectory.py):
    # the usable range the monitor assumes of every battery (the Cellect Box curtails at
    # 5 % and 95 %), the round trip efficiency (split evenly between charge and
    # discharge), and how near a breach must be for the alert to be critical.
    plan_soc_min: float = Field(0.05, ge=0, le=1)
    plan_soc_max: float = Field(0.95, ge=0, le=1)
    round_trip_efficiency: float = Field(0.92, gt=0, le=1)
    plan_breach_critical_s: float = Field(3600.0, gt=0)
    # Delivered against planned (docs/alerts.md#trackingdeviation): the tracking error is
    # judged over each site's last N entries, and TrackingDeviation fires above this share.
    tracking_window_entries: int = Field(16, ge=1, le=10_000)
    tracking_deviation_ratio: float = Field(0.10, gt=0, le=10)
    group_wait_s: float = Field(30.0, ge=0)
    group_interval_s: float = Field(300.0, ge=0)
    repeat_interval_s: float = Field(4 * 3600.0, ge=0)
    # Real seconds between two alert cycles when webhooks wake the engine: in a storm
    # of failures the cycles would otherwise follow each other and take CPU from ingest.
    alert_min_gap_s: float = Field(1.0, ge=0, le=60)

    # Several replicas on PostgreSQL (real seconds, the database's clock): a lease lives
    # this long unrenewed, and each replica renews its leases this often. A crashed
    # replica's share is taken within about TTL + one renewal.
    lease_ttl_s: float = Field(15.0, ge=1, le=600)
    lease_renew_s: float = Field(5.0, ge=0.2, le=200)

    @model_validator(mode="after")
    def _lease_timing(self) -> Settings:
        if self.lease_renew_s * 2 > self.lease_ttl_s:
            raise ValueError("CELLECT_LEASE_RENEW_S must be at most half of CELLECT_LEASE_TTL_S")
        if self.plan_soc_min >= self.plan_soc_max:
            raise ValueError("CELLECT_PLAN_SOC_MIN must be below CELLECT_PLAN_SOC_MAX")
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator(
        "webhook_signing_secrets",
        "webhook_allowed_ips",
        "apprise_urls",
        "forwarded_allow_ips",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [_network(item) for item in value]

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        # The messages never quote the value: settings errors are printed.
        if value is not None:
            token = value.get_secret_value()
            if len(token) < MIN_ADMIN_TOKEN_LENGTH:
                raise ValueError(f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters long")
            if not all("!" <= c <= "~" for c in token):
                raise ValueError("must be printable ASCII without spaces")
        return value

    @field_validator("api_url", "token_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


def describe_error(exc: Exception) -> str:
    """A one-line account of a settings error, naming the CELLECT_ variables at fault."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for error in errors():
        name = "CELLECT_" + "_".join(str(p) for p in error.get("loc", ())).upper()
        parts.append(f"{name}: {error.get('msg', 'invalid')}")
    return "invalid settings: " + "; ".join(parts)
