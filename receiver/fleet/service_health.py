"""The monitor's own health towards the Cellect API and its webhooks, kept once for both
alert engines: what ApiDown, AuthFailing, RefreshTokenExpiring and WebhookSilence judge.

Each fact is exported as a metric *and* handed to the built-in rules in one `ServiceView`,
so `alerts/cellect.rules.yml` and the built-in engine judge the same values:

- the monitor's start, on its clock (`cellect_monitor_start_time_seconds`): silences
  and overdue pollers are counted from it at the latest;
- each running poller's interval (`cellect_poll_interval_seconds{poller}`) and last
  success (`cellect_poll_last_success_timestamp_seconds{poller}`, absent until the
  first): in webhooks-only mode no poller runs and neither exists;
- since when each endpoint of the Cellect API has been failing
  (`cellect_api_failing_since_timestamp_seconds{endpoint}`, present only meanwhile): its
  first attempt that got no answer (a 5xx, a timeout, a connection error), until it
  answers again or any request succeeds. Any HTTP status below 500 is an answer: a 429
  is the vendor throttling us and a 401 refusing us, the API is up either way. Per
  endpoint, because one failing part (the token service, say, while the resources
  still answer 401 to an expired token) stalls the monitor as surely as a failing
  whole; but a 2xx anywhere clears them all, since an endpoint the pollers visit only
  every quarter of an hour would otherwise keep an outage open long after the API is
  back. A failure must be seen, not inferred from time passing: a monitor that made no
  request (a paused process, a clock stepped forward) has no news of the API;
- whether the credentials are refused (`cellect_api_credentials_refused`, 1/0, only
  while polling): the token service refusing the refresh token (400/401) until it
  issues one again, or the API refusing an access token it has just issued (a 401 as
  the first answer after a new token) until a resource answers 2xx. A 401 for an older
  token is the vendor forgetting it early: the client renews it, and only the renewed
  token's fate is a verdict. Token-service 5xx and timeouts are no verdict: the network,
  not the credentials (ApiDown). Nor is a 403: the guide's only 403 is 30004, a site
  that is not ours, which the pollers skip as gone;
- the last accepted webhook delivery (`cellect_webhook_last_accepted_timestamp_seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from receiver.alerting.model import PollerView, ServiceView
from receiver.cellect.clock import Clock
from receiver.metrics.registry import Metrics

TOKEN_ENDPOINT = "access_token"
TOKEN_REFUSALS = frozenset({"400", "401"})


def answered(code: str) -> bool:
    """Whether an attempt's code (HTTP status, or "error" / "timeout") is an API answer."""
    return code.isdigit() and int(code) < 500


@dataclass
class _Poller:
    interval_s: float
    last_success: datetime | None = None


class ServiceHealth:
    """The service's side of the fleet picture; see the module docstring."""

    def __init__(self, *, metrics: Metrics, clock: Clock) -> None:
        self.metrics, self.clock = metrics, clock
        self.started_at = clock.now()
        metrics.set_start_time(self.started_at.timestamp())
        self._pollers: dict[str, _Poller] = {}
        self._failing_since: dict[str, datetime] = {}  # by endpoint
        # Refusals by kind: a refused access token is not cleared by a new one being
        # issued (the API may refuse that too), only by a resource answering 2xx.
        self._refresh_refused: datetime | None = None
        self._access_refused: datetime | None = None
        self._new_token = False  # the last answer issued a token: the next 401 is a verdict
        self._refresh_token_expires_at: datetime | None = None
        self._webhook_accepted_at: datetime | None = None
        self.answered_at: datetime | None = None  # the API's last answer since the start

    def poller_started(self, name: str, interval_s: float) -> None:
        self._pollers[name] = _Poller(interval_s)
        self.metrics.set_poll_interval(name, interval_s)
        self.metrics.set_credentials_refused(self._refused_since() is not None)

    def poll_succeeded(self, name: str, at: datetime) -> None:
        poller = self._pollers.get(name)
        if poller is not None:
            poller.last_success = at
        self.metrics.poll_succeeded(name, at.timestamp())

    def api_request(self, endpoint: str, code: str, seconds: float) -> None:
        """One attempt at the vendor: metrics, the API's last answer, the credentials' verdict."""
        self.metrics.observe_api(endpoint, code, seconds)
        now = self.clock.now()
        if answered(code):
            self.answered_at = now
        else:
            if endpoint not in self._failing_since:
                self._failing_since[endpoint] = now
                self.metrics.set_api_failing_since(endpoint, now.timestamp())
            return
        recovered = list(self._failing_since) if code.startswith("2") else [endpoint]
        for name in recovered:
            if self._failing_since.pop(name, None) is not None:
                self.metrics.set_api_failing_since(name, None)
        if endpoint == TOKEN_ENDPOINT:
            self._token_answer(code, now)
        else:
            self._resource_answer(code, now)
        if self._pollers:
            self.metrics.set_credentials_refused(self._refused_since() is not None)

    def _token_answer(self, code: str, now: datetime) -> None:
        self._new_token = code == "200"
        if code == "200":
            self._refresh_refused = None
        elif code in TOKEN_REFUSALS:
            self._refresh_refused = self._refresh_refused or now

    def _resource_answer(self, code: str, now: datetime) -> None:
        if code == "401" and self._new_token:
            self._access_refused = self._access_refused or now
        elif code.startswith("2"):
            self._access_refused = None
        self._new_token = False

    def _refused_since(self) -> datetime | None:
        moments = [m for m in (self._refresh_refused, self._access_refused) if m is not None]
        return min(moments, default=None)

    def webhook_answered(self, outcome: str, seconds: float) -> None:
        """One webhook delivery answered with `outcome` (metrics; "accepted" ends a silence)."""
        self.metrics.observe_webhook(outcome, seconds)
        if outcome == "accepted":
            self._webhook_accepted_at = self.clock.now()
            self.metrics.set_webhook_last_accepted(self._webhook_accepted_at.timestamp())

    def webhook_accepted_elsewhere(self, at: datetime) -> None:
        """Another replica accepted a delivery at `at` (the fleet feed): webhooks are not
        silent, whichever replica the balancer sent them to. This replica's own series
        (`cellect_webhook_last_accepted_timestamp_seconds`) stays its own."""
        if self._webhook_accepted_at is None or at > self._webhook_accepted_at:
            self._webhook_accepted_at = at

    def restore(self, *, last_webhook_at: datetime | None) -> None:
        """What the database knows of the service before this start: the last delivery
        accepted (a silence does not start over with every restart)."""
        if last_webhook_at is not None and self._webhook_accepted_at is None:
            self._webhook_accepted_at = last_webhook_at
            self.metrics.set_webhook_last_accepted(last_webhook_at.timestamp())

    def set_refresh_token_expiry(self, at: datetime | None) -> None:
        self._refresh_token_expires_at = at
        self.metrics.set_refresh_token_expiry(at.timestamp() if at else None)

    def view(self) -> ServiceView:
        return ServiceView(
            started_at=self.started_at,
            pollers=tuple(
                PollerView(name, p.interval_s, p.last_success) for name, p in self._pollers.items()
            ),
            api_failing_since=min(self._failing_since.values(), default=None),
            auth_refused_since=self._refused_since(),
            refresh_token_expires_at=self._refresh_token_expires_at,
            last_webhook_at=self._webhook_accepted_at,
        )
