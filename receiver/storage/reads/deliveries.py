"""Stored webhook deliveries, most recent first, and one delivery with its raw body.

Ordered by (received_at, id) descending: the received_at index serves the order. The
per-site list filters that same walk: migration 0002 dropped the (site_id, received_at)
index because every delivery wrote it and ingest is the hot path, so a site that gets
few of the fleet's deliveries costs a longer walk — a read the operator makes now and
then, against a write made thousands of times a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlmodel import Session, col

from receiver.storage.reads.paging import (
    DEFAULT_LIMIT,
    Page,
    check_limit,
    decode_cursor,
    encode_cursor,
    page_of,
)
from receiver.storage.tables import WebhookDelivery

_KIND = "deliveries"


@dataclass(frozen=True)
class DeliveryView:
    """One raw delivery as received: who sent it, its digest, its length in characters,
    and its body (only when read one by one)."""

    id: int
    received_at: datetime
    site_id: int
    digest: str
    remote_addr: str | None
    replayed_at: datetime | None
    body_chars: int
    body: str | None = None


def delivery_page(
    *,
    session: Session,
    site_id: int | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[DeliveryView]:
    """The deliveries (of one site, if given), most recent first, without their bodies."""
    check_limit(limit)
    d = WebhookDelivery
    query = (
        select(col(d.id), col(d.received_at), col(d.site_id), col(d.digest),
               col(d.remote_addr), col(d.replayed_at), func.length(col(d.body)))
        .order_by(col(d.received_at).desc(), col(d.id).desc())
        .limit(limit + 1)
    )  # fmt: skip
    if site_id is not None:
        query = query.where(col(d.site_id) == site_id)
    if after is not None:
        key = decode_cursor(after, _KIND, (datetime, int))
        query = query.where(tuple_(col(d.received_at), col(d.id)) < key)
    views = [DeliveryView(*row) for row in session.execute(query)]
    return page_of(views, limit, lambda v: encode_cursor(_KIND, v.received_at, v.id))


def delivery(*, session: Session, delivery_id: int) -> DeliveryView | None:
    """One delivery with its raw body; None when there is no such delivery (or it was pruned)."""
    found = session.get(WebhookDelivery, delivery_id)
    if found is None or found.id is None:
        return None
    return DeliveryView(
        id=found.id,
        received_at=found.received_at,
        site_id=found.site_id,
        digest=found.digest,
        remote_addr=found.remote_addr,
        replayed_at=found.replayed_at,
        body_chars=len(found.body),
        body=found.body,
    )
