"""Fuzzing the real endpoint (lifespan on, TestClient): malformed bodies and headers never
get a 5xx, and only valid deliveries add rows."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from sqlalchemy import func
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from receiver.cellect.clock import Clock
from receiver.cellect.webhook import PayloadError, parse_status_webhook
from receiver.storage.tables import ScheduleEntryRecord, WebhookDelivery
from receiver.web.app import WEBHOOK_PATH, create_app
from tests.support.served_receiver import SECRET, START, TABLES, receiver_settings

SIGNING = base64.b64encode(b"fuzz-signing-key-0123456789abcdef").decode()
FUZZ = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
zones = st.sampled_from([None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])
timestamps = st.datetimes(timezones=zones).map(lambda d: d.isoformat()) | st.text(max_size=32)
entries = st.fixed_dictionaries(
    {"start": timestamps | json_values, "end": timestamps | json_values,
     "status": st.integers(-1, 7) | json_values},
    optional={"extra": json_values},
)  # fmt: skip
payloads = st.fixed_dictionaries(
    {},
    optional={
        "siteId": st.integers(-2, 2**64) | json_values,
        "schedule": st.lists(entries, max_size=4) | json_values,
        "unknown": json_values,
    },
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(json.dumps).map(str.encode)
    | payloads.map(json.dumps).map(str.encode)
)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    app = create_app(
        receiver_settings(database_url, webhook_signing_secrets=SIGNING),
        clock=Clock.frozen(START),
        registry=CollectorRegistry(),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _counts(client: TestClient) -> tuple[int, ...]:
    with Session(client.app.state.monitor.database) as session:  # type: ignore[attr-defined]
        return tuple(session.exec(select(func.count()).select_from(t)).one() for t in TABLES)


def _valid(content: bytes) -> bool:
    try:
        parse_status_webhook(json.loads(content.decode("utf-8")))
    except (ValueError, PayloadError, RecursionError):
        return False
    return True


def _signed(content: bytes, at: datetime = START, msg_id: str = "msg_fuzz") -> dict[str, str]:
    signature = Webhook(SIGNING).sign(msg_id, at, content.decode("utf-8", "replace"))
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature, "Authorization": f"Bearer {SECRET}"}  # fmt: skip


OVERFLOW = b'{"siteId": 1, "schedule": [{"start": "0001-01-01T00:00:00+14:00", "end": "x"}]}'


@FUZZ
@given(content=bodies)
@example(content=OVERFLOW)  # found by this test: a 500 before parse_timestamp caught it
def test_fuzzed_bodies_get_4xx_or_are_stored_whole(client: TestClient, content: bytes) -> None:
    """Any body: never 5xx; rejected ones add no row, accepted ones are valid deliveries."""
    before = _counts(client)
    response = client.post(WEBHOOK_PATH, content=content, headers=_signed(content))
    assert response.status_code < 500, response.text
    after = _counts(client)
    if response.status_code == 200:
        assert _valid(content)
        assert after[0] == before[0] + (0 if response.json()["duplicate"] else 1)
    else:
        assert response.status_code in (400, 401, 413, 422), response.text
        assert response.json().get("field") or response.status_code == 401
        assert after == before
        assert not _valid(content) or response.status_code == 401


BASIC = "Basic " + base64.b64encode(f"x:{SECRET}".encode()).decode()
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
auths = st.one_of(
    header_values,
    st.just(f"Bearer {SECRET}"),
    header_values.map(lambda v: f"Bearer {v}"),
    header_values.map(lambda v: "Basic " + base64.b64encode(v.encode()).decode()),
    st.just(BASIC),
)
VALID = json.dumps({"siteId": 1, "schedule": [{"start": "2026-03-02T09:00:00Z",
                   "end": "2026-03-02T09:15:00Z", "status": 1}]}).encode()  # fmt: skip


@FUZZ
@given(
    authorization=auths | st.none(),
    token=header_values | st.just(SECRET) | st.none(),
    msg_id=header_values | st.just("msg_fuzz"),
    timestamp=header_values
    | st.integers(-(2**40), 2**40).map(str)
    | st.just(str(int(START.timestamp()))),
    signature=header_values | st.just(_signed(VALID)["webhook-signature"]),
    extra=st.dictionaries(
        st.sampled_from(["content-type", "webhook-id", "x-forwarded-for", "content-encoding"]),
        header_values,
        max_size=2,
    ),
)
def test_fuzzed_headers_never_5xx_and_store_only_when_authentic(
    client: TestClient,
    authorization: str | None,
    token: str | None,
    msg_id: str,
    timestamp: str,
    signature: str,
    extra: dict[str, str],
) -> None:
    """Any headers: never 5xx; a row appears only for a request with the secret and signature."""
    headers: dict[str, Any] = {**extra, "webhook-id": msg_id, "webhook-timestamp": timestamp,
                               "webhook-signature": signature}  # fmt: skip
    if authorization is not None:
        headers["Authorization"] = authorization
    params = {"token": token} if token is not None else None
    before = _counts(client)
    response = client.post(WEBHOOK_PATH, content=VALID, headers=headers, params=params)
    assert response.status_code < 500, response.text
    assert SECRET not in response.text
    if response.status_code != 200:
        assert response.status_code in (401, 403)
        assert _counts(client) == before
    else:
        assert token == SECRET or authorization in (f"Bearer {SECRET}", BASIC)


# Odd but valid deliveries: any 32-bit site id, any zone and precision within 2000-2099,
# entries up to 48 h, repeated slots, unknown fields, unicode in them.
valid_moments = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=zones.filter(bool)
)
valid_entries = st.builds(
    lambda start, span_s, status, extra: {
        "start": start.isoformat(),
        "end": (start + timedelta(seconds=span_s)).isoformat(),
        "status": status,
        **extra,
    },
    valid_moments,
    st.integers(1, 48 * 3600),
    st.integers(1, 5),
    st.dictionaries(st.sampled_from(["note", "ñ", "essPowerAC"]), json_values, max_size=2),
)
valid_payloads = st.fixed_dictionaries(
    {
        "siteId": st.integers(1, 2**31 - 1),
        "schedule": st.lists(valid_entries, min_size=1, max_size=6),
    },
    optional={"extra": json_values},
)


@FUZZ
@given(payload=valid_payloads)
def test_fuzzed_valid_deliveries_are_stored_whole(
    client: TestClient, payload: dict[str, Any]
) -> None:
    """Any valid delivery is acknowledged, its raw body kept byte for byte, and every
    entry it reports stored with that status."""
    content = json.dumps(payload, ensure_ascii=False).encode()
    response = client.post(WEBHOOK_PATH, content=content, headers=_signed(content))
    assert response.status_code == 200, response.text
    parsed = parse_status_webhook(payload)
    with Session(client.app.state.monitor.database) as session:  # type: ignore[attr-defined]
        if not response.json()["duplicate"]:
            stored = session.get(WebhookDelivery, response.json()["deliveryId"])
            assert stored is not None
            assert stored.body == content.decode()
        for entry in parsed.schedule:
            seen = session.exec(
                select(ScheduleEntryRecord.statuses_seen).where(
                    ScheduleEntryRecord.site_id == parsed.site_id,
                    ScheduleEntryRecord.start_at == entry.start,
                    ScheduleEntryRecord.end_at == entry.end,
                )
            ).all()
            assert any(mask & (1 << entry.status) for mask in seen), entry
