"""The emulator's control API under `/_emulator`: the partner dashboard and the test knobs.

- Refresh tokens: `POST /refresh-tokens {"resourceType": "partner-api", "partnerId",
  "expiresAt" | "expiresInS", "token"?}` → 201 with the value (shown only here);
  `GET /refresh-tokens` lists identifiers, never values; `DELETE /refresh-tokens/{id}`
  revokes (blank id 30082, unknown id 30083). Resource type missing 30064, invalid 30065.
- Webhook subscriptions: `POST|GET /webhooks`, `PUT|DELETE /webhooks/{id}` (`url`,
  `signingSecret`, `enabled`, `partnerId`, `description`); listings redact URL secrets
  and show only whether a signing secret is set.
- Clock: `GET /clock` → `{"now", "speed"}`; `POST /clock {"advance_s", "speed"}`.
- Faults: `POST|GET|DELETE /faults` (receiver.emulator.faults), `POST|GET /webhook-faults`.
- Boxes: `GET /sites`; `POST /sites/{id}/box {"online", "reporting"}`;
  `POST /sites/{id}/outages {"type", "reason", "source", "duration_s", "starts_in_s"}`;
  `DELETE /sites/{id}/outages/current`; `POST|DELETE /sites/{id}/inverter {"factor"}`
  (derating); `POST /sites/{id}/meter {"noise"}`.
Every change is followed by `emulator.sync()`, so its webhooks go out at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.cellect.errors import CellectApiError
from receiver.cellect.timestamps import format_timestamp
from receiver.emulator import control_bodies as bodies
from receiver.emulator.cloud import Emulator
from receiver.emulator.control_bodies import ControlError, parse, read_payload
from receiver.emulator.control_sites import SiteControl
from receiver.emulator.faults import ANY, ENDPOINT_CODES, FaultRule
from receiver.emulator.state import Subscription
from receiver.emulator.tokens import RESOURCE_TYPES, RefreshToken
from receiver.emulator.webhook_sender import WebhookFaults
from receiver.runtime.redaction import redact_url

Handler = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Handler) -> Handler:
    """Turn ControlErrors (and Cellect errors) into JSON answers naming the field."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ControlError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except CellectApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.http_status)

    return endpoint


def _token_view(record: RefreshToken) -> dict[str, Any]:
    return {
        "identifier": record.identifier,
        "partnerId": record.partner_id,
        "resourceType": record.resource_type,
        "createdAt": format_timestamp(record.created_at),
        "expiresAt": format_timestamp(record.expires_at),
        "revoked": record.revoked,
    }


def _subscription_view(subscription: Subscription) -> dict[str, Any]:
    created = subscription.created_at
    return {
        "id": subscription.subscription_id,
        "partnerId": subscription.partner_id,
        "url": redact_url(subscription.url),
        "hasSigningSecret": bool(subscription.signing_secret),
        "enabled": subscription.enabled,
        "description": subscription.description,
        "createdAt": format_timestamp(created) if created else None,
    }


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ControlError("url", "url is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ControlError("url", "url must be an absolute http(s) URL")


class Control:
    """The control endpoints, bound to one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    # --- refresh tokens ---------------------------------------------------------------

    async def issue_token(self, request: Request) -> Response:
        body = parse(bodies.RefreshTokenBody, await read_payload(request))
        raw_type = body.resource_type
        if raw_type is None or (isinstance(raw_type, str) and not raw_type.strip()):
            raise ControlError("resourceType", "resourceType is required", code=30064)
        if not isinstance(raw_type, str) or raw_type not in RESOURCE_TYPES:
            message = f"resourceType must be one of {sorted(RESOURCE_TYPES)}"
            raise ControlError("resourceType", message, code=30065)
        if body.partner_id not in self.emulator.portfolio.partners:
            message = "partnerId names no partner account"
            raise ControlError("partnerId", message, status=404, code=30021)
        expires_at = body.expires_at
        if body.expires_in_s is not None:
            expires_at = self.emulator.clock.now() + timedelta(seconds=body.expires_in_s)
        value, record = self.emulator.tokens.issue_refresh_token(
            body.partner_id, token=body.token, expires_at=expires_at, resource_type=raw_type
        )
        return JSONResponse({**_token_view(record), "token": value}, status_code=201)

    async def list_tokens(self, request: Request) -> Response:
        records = self.emulator.tokens.refresh_tokens()
        return JSONResponse([_token_view(record) for record in records])

    async def revoke_token(self, request: Request) -> Response:
        identifier = request.path_params.get("identifier", "")
        if not identifier.strip():
            raise ControlError("identifier", "a refresh token identifier is required", code=30082)
        record = self.emulator.tokens.revoke(identifier)
        if record is None:
            raise ControlError("identifier", "no refresh token has this identifier", code=30083)
        return JSONResponse(_token_view(record))

    # --- webhook subscriptions --------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        body = parse(bodies.SubscriptionBody, await read_payload(request))
        _check_url(body.url)
        if body.partner_id not in self.emulator.portfolio.partners:
            raise ControlError("partnerId", "partnerId names no partner account", status=404)
        subscription = self.emulator.subscribe(
            body.url,
            partner_id=body.partner_id,
            signing_secret=body.signing_secret,
            enabled=body.enabled,
            description=body.description,
        )
        return JSONResponse(_subscription_view(subscription), status_code=201)

    async def list_subscriptions(self, request: Request) -> Response:
        subscriptions = self.emulator.subscriptions.values()
        return JSONResponse([_subscription_view(s) for s in subscriptions])

    def _subscription(self, request: Request) -> Subscription:
        subscription_id = request.path_params["subscription_id"]
        subscription = self.emulator.subscriptions.get(subscription_id)
        if subscription is None:
            raise ControlError("id", f"no webhook subscription {subscription_id}", status=404)
        return subscription

    async def update_subscription(self, request: Request) -> Response:
        current = self._subscription(request)
        body = parse(bodies.SubscriptionUpdate, await read_payload(request))
        if body.url is not None:
            _check_url(body.url)
        changes: dict[str, Any] = {
            name: value
            for name in ("url", "enabled", "description")
            if (value := getattr(body, name)) is not None
        }
        if "signing_secret" in body.model_fields_set:
            changes["signing_secret"] = body.signing_secret or None  # null/"" removes it
        updated = dataclasses.replace(current, **changes)
        self.emulator.subscriptions[updated.subscription_id] = updated
        return JSONResponse(_subscription_view(updated))

    async def unsubscribe(self, request: Request) -> Response:
        subscription = self._subscription(request)
        del self.emulator.subscriptions[subscription.subscription_id]
        return JSONResponse(_subscription_view(subscription))

    # --- clock and faults -------------------------------------------------------------

    def _clock_view(self) -> dict[str, Any]:
        clock = self.emulator.clock
        return {"now": format_timestamp(clock.now()), "speed": clock.speed}

    async def get_clock(self, request: Request) -> Response:
        return JSONResponse(self._clock_view())

    async def set_clock(self, request: Request) -> Response:
        body = parse(bodies.ClockBody, await read_payload(request))
        if body.advance_s is None and body.speed is None:
            raise ControlError("advance_s", "give advance_s and/or speed")
        if body.advance_s:
            self.emulator.clock.advance(body.advance_s)
        if body.speed is not None:
            self.emulator.clock.set_speed(body.speed)
        self.emulator.sync()
        return JSONResponse(self._clock_view())

    def _faults_view(self) -> dict[str, Any]:
        rules = self.emulator.faults.rules
        return {endpoint: rule.public() for endpoint, rule in rules.items()}

    async def set_faults(self, request: Request) -> Response:
        body = parse(bodies.FaultBody, await read_payload(request))
        if body.endpoint != ANY and body.endpoint not in ENDPOINT_CODES:
            names = [ANY, *sorted(ENDPOINT_CODES)]
            raise ControlError("endpoint", f"endpoint must be one of {names}")
        rule = body.model_dump(exclude={"endpoint", "expire_tokens"})
        if body.model_fields_set - {"endpoint", "expire_tokens"}:
            self.emulator.faults.set(body.endpoint, FaultRule(**rule))
        if body.expire_tokens:
            self.emulator.tokens.expire_access_tokens()
        return JSONResponse(self._faults_view())

    async def get_faults(self, request: Request) -> Response:
        return JSONResponse(self._faults_view())

    async def clear_faults(self, request: Request) -> Response:
        self.emulator.faults.clear()
        return JSONResponse(self._faults_view())

    async def set_webhook_faults(self, request: Request) -> Response:
        body = parse(bodies.WebhookFaultBody, await read_payload(request))
        self.emulator.sender.set_faults(WebhookFaults(**body.model_dump()))
        return JSONResponse(dataclasses.asdict(self.emulator.sender.faults))

    async def get_webhook_faults(self, request: Request) -> Response:
        return JSONResponse(dataclasses.asdict(self.emulator.sender.faults))

    async def list_requests(self, request: Request) -> Response:
        """The per-site reads served: `{resource: {siteId: [moments]}}` (request_log.py)."""
        view = self.emulator.requests.view()
        return JSONResponse(
            {
                resource: {
                    site: [format_timestamp(m) for m in reads] for site, reads in by_site.items()
                }
                for resource, by_site in view.items()
            }
        )


def control_routes(emulator: Emulator) -> list[BaseRoute]:
    """The `/_emulator` routes (mounted by receiver.emulator.app)."""
    c, sites = Control(emulator), SiteControl(emulator)

    def route(path: str, handler: Handler, method: str) -> Route:
        return Route(path, _guarded(handler), methods=[method])

    return [
        route("/refresh-tokens", c.issue_token, "POST"),
        route("/refresh-tokens", c.list_tokens, "GET"),
        route("/refresh-tokens", c.revoke_token, "DELETE"),
        route("/refresh-tokens/{identifier:segment}", c.revoke_token, "DELETE"),
        route("/webhooks", c.subscribe, "POST"),
        route("/webhooks", c.list_subscriptions, "GET"),
        route("/webhooks/{subscription_id:int}", c.update_subscription, "PUT"),
        route("/webhooks/{subscription_id:int}", c.unsubscribe, "DELETE"),
        route("/clock", c.get_clock, "GET"),
        route("/clock", c.set_clock, "POST"),
        route("/faults", c.set_faults, "POST"),
        route("/faults", c.get_faults, "GET"),
        route("/faults", c.clear_faults, "DELETE"),
        route("/webhook-faults", c.set_webhook_faults, "POST"),
        route("/webhook-faults", c.get_webhook_faults, "GET"),
        route("/requests", c.list_requests, "GET"),
        route("/sites", sites.list_sites, "GET"),
        route("/sites/{site_id:int}/box", sites.set_box, "POST"),
        route("/sites/{site_id:int}/battery", sites.set_battery, "POST"),
        route("/sites/{site_id:int}/outages", sites.start_outage, "POST"),
        route("/sites/{site_id:int}/outages/current", sites.end_outage, "DELETE"),
        route("/sites/{site_id:int}/inverter", sites.set_inverter, "POST"),
        route("/sites/{site_id:int}/inverter", sites.restore_inverter, "DELETE"),
        route("/sites/{site_id:int}/meter", sites.set_meter, "POST"),
    ]
