"""The emulated Cellect cloud: the facade the emulator's app, CLI and tests use.

`Emulator` owns the clock, the demo portfolio, one `Box` per site, the refresh/access
tokens, the API faults, the partners' webhook subscriptions and the `WebhookSender`.
Every change of an entry's status, from any Box call, goes to the sender, which
delivers it to the owning partner's subscriptions.

Decision (master data): a site whose box is offline or not reporting has no live data
in the cloud: it is left out of PortfolioOverview and its SiteInformation answers
30003 Site Data Fetch Failed, so that a monitor marks it stale instead of showing
frozen values.

Decision (determinism): the same seed on a frozen clock driven through the same calls
gives the same run, byte for byte. Nothing reads the wall clock or an unseeded rng:
each box, the webhook sender, the API faults and the tokens have their own rng derived
from the seed. Availability event ids are taken per site from the site's own id
space, `site_id * EVENT_ID_SPACE + n` (site 3's events are 300001, 300002, ...), so
they depend only on that box's own history, never on how often or in which order the
boxes are synced; they stay unique across the portfolio (up to 99,999 events a site)
and within a 32-bit integer for up to 21,474 sites.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Sequence
from datetime import datetime

import httpx
from starlette.types import ASGIApp

from receiver.cellect.clock import Clock
from receiver.cellect.enums import AvailabilityStatus, ImplementationStatus
from receiver.cellect.models import AvailabilityEvent, ScheduleEntry, SiteInformation
from receiver.emulator.box import Box
from receiver.emulator.faults import Faults
from receiver.emulator.portfolio import MAIN_PARTNER, Portfolio, demo_portfolio
from receiver.emulator.request_log import RequestLog
from receiver.emulator.state import Outage, SiteSpec, StatusChange, Subscription
from receiver.emulator.tokens import TokenService
from receiver.emulator.trader import DemoTrader
from receiver.emulator.webhook_sender import WebhookSender
from receiver.runtime import waiting

logger = logging.getLogger(__name__)

# Real seconds between background syncs: webhooks for transfers and executions go out
# at most this late (in real time) at any clock speed.
TICK_S = 0.5
# Availability event ids of site s are s * EVENT_ID_SPACE + 1, + 2, ... (see above).
EVENT_ID_SPACE = 100_000
DEMO_TRADER = "demo-trader"  # the resource type of the demo trader's own refresh token


class Emulator:
    """The Cellect cloud and its boxes, driven by one injectable clock."""

    def __init__(
        self,
        *,
        sites: int = 5,
        seed: int = 1,
        clock: Clock | None = None,
        outage_rate_per_day: float = 0.0,
        transfer_delay_s: float = 30.0,
        demo_trader: bool = False,
        measurement_noise: float = 0.0,
    ) -> None:
        self.clock = clock or Clock()
        self.seed = seed
        self.portfolio: Portfolio = demo_portfolio(sites, seed)
        self.specs: dict[int, SiteSpec] = self.portfolio.sites
        self.tokens = TokenService(self.clock, rng=random.Random(f"{seed}:tokens"))
        self.faults = Faults(seed=seed)
        self.requests = RequestLog()  # per-site reads served (GET /_emulator/requests)
        self.demo_trader = demo_trader
        self._post_ids = itertools.count(1)
        self._subscription_ids = itertools.count(1)
        self.subscriptions: dict[int, Subscription] = {}
        now = self.clock.now()
        self.boxes: dict[int, Box] = {
            site_id: Box(
                spec,
                now=now,
                rng=random.Random(seed * 1_000_003 + site_id),
                transfer_delay_s=transfer_delay_s,
                outage_rate_per_day=outage_rate_per_day,
                next_event_id=itertools.count(site_id * EVENT_ID_SPACE + 1).__next__,
            )
            for site_id, spec in self.specs.items()
        }
        for box in self.boxes.values():
            box.set_meter_noise(measurement_noise)
        self.sender = WebhookSender(
            clock=self.clock, subscriptions=self.subscriptions_of, rng=random.Random(seed)
        )

    # --- tokens and subscriptions (the partner dashboard) -----------------------------

    def issue_refresh_token(
        self,
        partner_id: int = MAIN_PARTNER,
        *,
        token: str | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        """Issue a refresh token for `partner_id`; returns its value."""
        value, _ = self.tokens.issue_refresh_token(partner_id, token=token, expires_at=expires_at)
        return value

    def subscriptions_of(self, partner_id: int) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.partner_id == partner_id]

    def subscribe(
        self,
        url: str,
        *,
        partner_id: int = MAIN_PARTNER,
        signing_secret: str | None = None,
        enabled: bool = True,
        description: str = "",
    ) -> Subscription:
        """Add a webhook subscription for a partner (the dashboard's "Notifications")."""
        subscription = Subscription(
            subscription_id=next(self._subscription_ids),
            partner_id=partner_id,
            url=url,
            signing_secret=signing_secret,
            enabled=enabled,
            created_at=self.clock.now(),
            description=description,
        )
        self.subscriptions[subscription.subscription_id] = subscription
        return subscription

    # --- the boxes --------------------------------------------------------------------

    def publish(self, changes: Sequence[StatusChange]) -> None:
        """Hand status changes to the sender, per owning partner."""
        by_partner: dict[int, list[StatusChange]] = {}
        for change in changes:
            by_partner.setdefault(self.specs[change.site_id].partner_id, []).append(change)
        for partner_id, batch in by_partner.items():
            self.sender.publish(partner_id, batch)

    def sync(self) -> list[StatusChange]:
        """Advance every box to the clock's now and publish what changed."""
        now = self.clock.now()
        changes = [change for box in self.boxes.values() for change in box.advance_to(now)]
        self.publish(changes)
        return changes

    def box(self, site_id: int) -> Box:
        """The site's box, advanced to now (its changes published)."""
        box = self.boxes[site_id]
        self.publish(box.advance_to(self.clock.now()))
        return box

    def store(self, site_id: int, entries: Sequence[ScheduleEntry]) -> int:
        """Store a validated post on the site's box; returns the post id."""
        post_id = next(self._post_ids)
        self.publish(self.boxes[site_id].store(entries, post_id=post_id, now=self.clock.now()))
        return post_id

    def delete(self, site_id: int, start: datetime, end: datetime) -> int:
        """Delete the not-started entries overlapping [start, end); returns how many."""
        changes = self.boxes[site_id].delete(start=start, end=end, now=self.clock.now())
        self.publish(changes)
        return sum(1 for change in changes if change.status is ImplementationStatus.DELETED)

    def site_information(self, site_id: int) -> SiteInformation | None:
        """Live master data of a site, None while its box is offline or not reporting."""
        spec, box = self.specs[site_id], self.box(site_id)
        if not (box.online and box.reporting):
            return None
        return SiteInformation(
            site_id=spec.site_id,
            site_name=spec.name,
            country=spec.country,
            latitude=spec.latitude,
            longitude=spec.longitude,
            ess_soc=round(box.soc_pct, 3),
            ess_power=round(box.measured_power_kw(), 3),
            ess_installed_energy_capacity=spec.capacity_kwh,
            ess_power_ac_rated_discharge=spec.rated_discharge_kw,
            ess_power_ac_rated_charge=spec.rated_charge_kw,
        )

    def availability_events(self, site_id: int) -> list[AvailabilityEvent]:
        """The site's outages as Availability events, in announcement order."""
        spec = self.specs[site_id]
        return [_event(spec, outage) for outage in self.box(site_id).outages]

    # --- background -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, app: ASGIApp | None = None) -> None:
        """Sync on a tick, deliver webhooks (and trade, with `app`) until `stop` is set."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._tick(stop))
            group.create_task(self.sender.run(stop))
            if self.demo_trader and app is not None:
                group.create_task(self._trade(stop, app))

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sync()
            await waiting.pause(TICK_S, stop)

    async def _trade(self, stop: asyncio.Event, app: ASGIApp) -> None:
        # Marked as the demo trader's in the dashboard's list (GET /_emulator/refresh-tokens),
        # so that a demo can take over trading by revoking it.
        token, _ = self.tokens.issue_refresh_token(MAIN_PARTNER, resource_type=DEMO_TRADER)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
            trader = DemoTrader(http=http, refresh_token=token, clock=self.clock, seed=self.seed)
            await trader.run(stop)


def _event(spec: SiteSpec, outage: Outage) -> AvailabilityEvent:
    return AvailabilityEvent(
        event_id=outage.event_id,
        site_id=spec.site_id,
        site_name=spec.name,
        country=spec.country,
        latitude=spec.latitude,
        longitude=spec.longitude,
        availability_status=AvailabilityStatus.NOT_AVAILABLE,
        type=outage.downtime_type,
        reason=outage.reason,
        source=outage.source,
        start_date=outage.start,
        end_date=outage.end,
    )
