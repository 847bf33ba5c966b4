"""The operator API under test: its admin token, settings and a client of the real app."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.testclient import TestClient

from receiver.cellect.clock import Clock
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.support.stack import START

ADMIN_TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def api_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "webhook_secret": SecretStr("test-webhook-secret-0001"),
        "admin_token": SecretStr(ADMIN_TOKEN),
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def api_client(settings: Settings) -> TestClient:
    """The real app on a clock frozen at START; 5xx answers are returned, not raised."""
    app = create_app(settings, clock=Clock.frozen(START), registry=CollectorRegistry())
    return TestClient(app, raise_server_exceptions=False)
