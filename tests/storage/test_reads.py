"""The operator's read queries (receiver.storage.reads) on both databases: what each returns,
downsampling's bounds, and cursor pagination that never skips or repeats an item."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus as S
from receiver.cellect.models import StatusWebhook
from receiver.storage.alerts import upsert_alert
from receiver.storage.deliveries import IncomingDelivery, store_webhook_batch
from receiver.storage.events import upsert_availability_events
from receiver.storage.outbox import enqueue_message
from receiver.storage.reads import MAX_LIMIT, Page, ReadError, all_items
from receiver.storage.reads.alerts import alert, alert_page, notification_page
from receiver.storage.reads.deliveries import delivery, delivery_page
from receiver.storage.reads.events import event_page
from receiver.storage.reads.measurements import (
    MAX_POINTS,
    bucket_width,
    downsampled_measurements,
    measurement_page,
)
from receiver.storage.reads.schedule import schedule_page, status_history
from receiver.storage.reads.sites import site_page, site_summary
from receiver.storage.sites import mark_absent_sites, record_measurements, upsert_sites
from receiver.storage.status import Observation, apply_observations, writer_for
from tests.support.records import outage, site_info

T = TypeVar("T")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
QUARTER = timedelta(minutes=15)


def _walk(fetch: Callable[[str | None], Page[T]]) -> list[list[T]]:
    """Every page of a list, following `next` (bounded)."""
    pages, cursor = [], None
    for _ in range(1000):
        page = fetch(cursor)
        pages.append(page.items)
        if page.next is None:
            return pages
        cursor = page.next
    raise AssertionError("the list never ended")


def _measure(session: Session, site_id: int, minutes: range, start: datetime = T0) -> None:
    for minute in minutes:
        site = site_info(site_id, soc=float(minute % 100), power=float(minute % 7 - 3))
        record_measurements(session=session, sites=[site], measured_at=start + minute * MINUTE)


def test_sites_carry_the_latest_measurement_presence_and_availability(session: Session) -> None:
    """Each site shows its newest measurement (None before any), whether it is still in the
    portfolio, and the start of an outage open at `now`; an ended outage does not count."""
    upsert_sites(session=session, sites=[site_info(i) for i in (1, 2, 3)], seen_at=T0)
    _measure(session, 1, range(30))
    _measure(session, 2, range(5))
    mark_absent_sites(session=session, present_ids=[1, 2], seen_at=T0 + MINUTE)
    down = T0 + 10 * MINUTE
    upsert_availability_events(
        session=session, site_id=2, events=[outage(2, 7, down, None)], seen_at=down
    )
    upsert_availability_events(
        session=session, site_id=1, events=[outage(1, 8, T0, T0 + MINUTE)], seen_at=T0
    )
    session.commit()
    now = T0 + timedelta(hours=1)
    one, two, three = site_page(session=session, now=now).items
    assert (one.measured_at, one.soc_pct, one.power_kw) == (T0 + 29 * MINUTE, 29.0, 29 % 7 - 3)
    assert (one.available, one.present) == (True, True)
    assert (two.measured_at, two.unavailable_since, two.available) == (T0 + 4 * MINUTE, down, False)
    assert (three.measured_at, three.soc_pct, three.present) == (None, None, False)
    assert site_summary(session=session, site_id=2, now=now) == two
    assert site_summary(session=session, site_id=99, now=now) is None
    assert [s.site_id for s in site_page(session=session, now=now, present=False).items] == [3]


def test_site_pages_are_stable_while_sites_arrive(session: Session) -> None:
    """Paging by id: a site added between pages before the cursor is not shown twice or
    shifted in, one after it is shown; every other site appears exactly once."""
    upsert_sites(session=session, sites=[site_info(i) for i in range(10, 60, 5)], seen_at=T0)
    session.commit()
    first = site_page(session=session, now=T0, limit=4)
    upsert_sites(session=session, sites=[site_info(11), site_info(56)], seen_at=T0)
    session.commit()
    rest = _walk(lambda c: site_page(session=session, now=T0, limit=4, after=c or first.next))
    shown = [s.site_id for s in first.items] + [s.site_id for page in rest for s in page]
    assert shown == [10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 56]
    assert all(len(page) <= 4 for page in rest)


def test_downsampling_bounds_and_aggregates(session: Session) -> None:
    """Three hours of 1-minute data in at most 7 buckets: every row of [start, end) in exactly
    one bucket (the row at `end` in none), each bucket's mean/min/max those of its rows."""
    upsert_sites(session=session, sites=[site_info(1), site_info(2)], seen_at=T0)
    _measure(session, 1, range(181))
    _measure(session, 2, range(181))  # another site's rows never mix in
    session.commit()
    start, end = T0 + 30 * MINUTE, T0 + 180 * MINUTE  # 150 rows: minutes 30…179
    result = downsampled_measurements(session=session, site_id=1, start=start, end=end, points=7)
    assert result.width_s == bucket_width(start, end, 7) == 1286  # ceil(9000 s / 7)
    assert len(result.buckets) <= 7
    assert sum(b.samples for b in result.buckets) == 150
    for bucket in result.buckets:
        minutes = [
            m for m in range(30, 180) if bucket.at <= T0 + m * MINUTE < bucket.at + timedelta(
                seconds=result.width_s)
        ]  # fmt: skip
        assert bucket.samples == len(minutes)
        socs = [m % 100 for m in minutes]
        assert bucket.soc_pct == pytest.approx(sum(socs) / len(socs))
        assert (bucket.soc_min, bucket.soc_max) == (min(socs), max(socs))
        powers = [m % 7 - 3 for m in minutes]
        assert bucket.power_kw == pytest.approx(sum(powers) / len(powers))
        assert (bucket.power_min, bucket.power_max) == (min(powers), max(powers))
    assert result.buckets[0].at == start


def test_downsampling_with_more_points_than_rows_keeps_every_row(session: Session) -> None:
    """With a bucket narrower than the sampling, each row is its own bucket, at its time;
    a window with no data has no bucket."""
    upsert_sites(session=session, sites=[site_info(1)], seen_at=T0)
    _measure(session, 1, range(10))
    session.commit()
    end = T0 + 10 * MINUTE
    dense = downsampled_measurements(session=session, site_id=1, start=T0, end=end, points=600)
    assert dense.width_s == 1
    assert [(b.at, b.samples, b.soc_pct) for b in dense.buckets] == [
        (T0 + m * MINUTE, 1, float(m)) for m in range(10)
    ]
    empty = downsampled_measurements(
        session=session, site_id=1, start=end, end=end + MINUTE, points=5
    )
    assert empty.buckets == []


@pytest.mark.parametrize(
    ("points", "start", "end", "field"),
    [
        (0, T0, T0 + MINUTE, "points"),
        (MAX_POINTS + 1, T0, T0 + MINUTE, "points"),
        (10, T0 + MINUTE, T0, "to"),
    ],
)
def test_downsampling_refuses_bad_input_naming_it(
    session: Session, points: int, start: datetime, end: datetime, field: str
) -> None:
    with pytest.raises(ReadError) as refused:
        downsampled_measurements(session=session, site_id=1, start=start, end=end, points=points)
    assert refused.value.field == field


def test_raw_measurement_pages_cover_the_window_once_in_order(session: Session) -> None:
    """Raw rows of [start, end), oldest first, in pages that add up to the window."""
    upsert_sites(session=session, sites=[site_info(1)], seen_at=T0)
    _measure(session, 1, range(25))
    session.commit()
    start, end = T0 + 3 * MINUTE, T0 + 20 * MINUTE
    pages = _walk(
        lambda c: measurement_page(
            session=session, site_id=1, start=start, end=end, after=c, limit=5
        )
    )
    assert [len(p) for p in pages] == [5, 5, 5, 2]
    assert [r.measured_at for p in pages for r in p] == [T0 + m * MINUTE for m in range(3, 20)]


def _observe(session: Session, slot: int, status: int, n: int, power: float | None = None) -> None:
    start = T0 + slot * QUARTER
    seen = Observation(
        1, start, start + QUARTER, S(status), T0 + n * MINUTE, None if power else n, power
    )
    source = "poll" if power is not None else "webhook"
    apply_observations(
        session=session, observations=[seen], source=source, writer=writer_for(session)
    )


def test_schedule_entries_every_generation_planned_and_executed(session: Session) -> None:
    """Slot 0 re-planned (1, 5, 1, 3) is two entries with their histories; slot 1 carries
    its planned power (from a poll) beside the mean measured power over its slot."""
    upsert_sites(session=session, sites=[site_info(1)], seen_at=T0)
    for n, status in enumerate((1, 5, 1, 3)):
        _observe(session, 0, status, n + 1)
    _observe(session, 1, 1, 10, power=-40.0)
    _observe(session, 1, 2, 11)
    _observe(session, 2, 1, 12)
    _measure(session, 1, range(15, 30))
    session.commit()
    page = schedule_page(session=session, site_id=1, start=T0, end=T0 + 2 * QUARTER)
    assert page.next is None
    first, second, third = page.items
    assert [(e.start_at, e.generation, e.status) for e in page.items] == [
        (T0, 0, S.OVERWRITTEN), (T0, 1, S.IMPLEMENTATION_FAILED), (T0 + QUARTER, 0, S.IMPLEMENTED),
    ]  # fmt: skip
    assert [h.status for h in first.history] == [1, 5]
    assert [(h.status, h.delivery_id) for h in second.history] == [(1, 3), (3, 4)]
    assert (first.statuses, second.statuses, third.statuses) == ((1, 5), (1, 3), (1, 2))
    assert (third.power_kw, third.unconfirmed) == (-40.0, (1,))  # the 1 only a poll told
    minutes = range(15, 30)
    assert third.measured_power_kw == pytest.approx(sum(m % 7 - 3 for m in minutes) / 15)
    assert first.measured_power_kw is None
    assert status_history(session=session, entry_id=second.id) == list(second.history)
    pages = _walk(lambda c: schedule_page(session=session, site_id=1, after=c, limit=1))
    assert [e.id for p in pages for e in p] == [first.id, second.id, third.id] + [
        e.id for e in schedule_page(session=session, site_id=1, start=T0 + 2 * QUARTER).items
    ]


def test_events_overlapping_a_window_in_pages(session: Session) -> None:
    """Events that overlap [start, end), open ones included, oldest first, page by page."""
    events = [
        outage(1, 1, T0, T0 + MINUTE),  # ends before the window
        outage(1, 2, T0 + 5 * MINUTE, T0 + 15 * MINUTE),
        outage(1, 3, T0 + 20 * MINUTE, None),
        outage(1, 4, T0 + 40 * MINUTE, None),  # starts after the window
        outage(2, 5, T0 + 20 * MINUTE, None),  # another site
    ]
    for site_id in (1, 2):
        mine = [e for e in events if e.site_id == site_id]
        upsert_availability_events(session=session, site_id=site_id, events=mine, seen_at=T0)
    session.commit()
    start, end = T0 + 10 * MINUTE, T0 + 30 * MINUTE
    pages = _walk(
        lambda c: event_page(session=session, site_id=1, start=start, end=end, after=c, limit=1)
    )
    assert [[e.event_id for e in p] for p in pages] == [[2], [3]]
    assert [e.event_id for e in event_page(session=session, site_id=1).items] == [1, 2, 3, 4]


def _delivery(site_id: int, slot: int, received_at: datetime) -> IncomingDelivery:
    start = T0 + slot * QUARTER
    entry = {"start": start.isoformat(), "end": (start + QUARTER).isoformat(), "status": 1}
    body = json.dumps({"siteId": site_id, "schedule": [entry]})
    return IncomingDelivery(body, StatusWebhook.model_validate_json(body), received_at, "10.0.0.1")


def test_deliveries_recent_first_per_site_and_one_with_its_body(session: Session) -> None:
    """Deliveries newest first (ties on the time by id), of one site when asked; one read by
    id carries its raw body; an unknown id is None."""
    batch = [_delivery(1 + n % 2, n, T0 + (n // 2) * MINUTE) for n in range(7)]
    outcomes = store_webhook_batch(session=session, deliveries=batch)
    pages = _walk(lambda c: delivery_page(session=session, after=c, limit=3))
    listed = [d for p in pages for d in p]
    assert [len(p) for p in pages] == [3, 3, 1]
    keys = [(d.received_at, d.id) for d in listed]
    assert keys == sorted(keys, reverse=True)
    assert sorted(d.id for d in listed) == sorted(o.delivery_id for o in outcomes)
    assert all(d.body is None and d.remote_addr == "10.0.0.1" for d in listed)
    of_two = all_items(lambda c: delivery_page(session=session, site_id=2, after=c, limit=2))
    site_two = [d.site_id for d in of_two]
    assert site_two == [2, 2, 2]
    one = delivery(session=session, delivery_id=listed[0].id)
    assert one is not None
    assert one.body is not None
    assert json.loads(one.body)["siteId"] == listed[0].site_id
    assert one.body_chars == len(one.body)
    assert delivery(session=session, delivery_id=10_000) is None


def _alert(session: Session, n: int, state: str, at: datetime) -> None:
    upsert_alert(
        session=session, fingerprint=f"fp{n}", rule="SoCLow", severity="warning",
        labels={"site_id": str(n)}, annotations={"summary": f"site {n} low"}, state="firing",
        at=at,
    )  # fmt: skip
    if state == "resolved":
        upsert_alert(
            session=session, fingerprint=f"fp{n}", rule="SoCLow", severity="warning",
            labels={"site_id": str(n)}, annotations={}, state="resolved", at=at + 10 * n * MINUTE,
        )  # fmt: skip


def test_alerts_by_state_newest_first_and_their_notifications(session: Session) -> None:
    """Firing alerts newest start first; resolved ones latest end first; a group's messages
    newest first, since a moment; a cursor of one state is refused by another."""
    for n, state in enumerate(["firing", "resolved", "firing", "resolved", "firing"]):
        _alert(session, n, state, T0 + n * MINUTE)
    for n in range(3):
        enqueue_message(session=session, group_key="SoCLow/warning", title=f"t{n}", body="b",
                        tags=["warning"], now=T0 + n * MINUTE)  # fmt: skip
    enqueue_message(session=session, group_key="Other/critical", title="x", body="b", tags=[],
                    now=T0)  # fmt: skip
    session.commit()
    firing = _walk(lambda c: alert_page(session=session, state="firing", after=c, limit=2))
    assert [a.labels["site_id"] for p in firing for a in p] == ["4", "2", "0"]
    resolved = alert_page(session=session, state="resolved", limit=1)
    assert [a.labels["site_id"] for a in resolved.items] == ["3"]  # ends at T0 + 33 min
    every = list(all_items(lambda c: alert_page(session=session, state="all", after=c, limit=2)))
    assert len(every) == 5
    assert alert(session=session, alert_id=every[0].id) == every[0]
    assert alert(session=session, alert_id=999) is None
    with pytest.raises(ReadError) as refused:
        alert_page(session=session, state="firing", after=resolved.next)
    assert refused.value.field == "cursor"
    with pytest.raises(ReadError) as refused:
        alert_page(session=session, state="stuck")  # type: ignore[arg-type]
    assert refused.value.field == "state"
    notes = _walk(lambda c: notification_page(session=session, group_key="SoCLow/warning",
                                              since=T0 + MINUTE, after=c, limit=1))  # fmt: skip
    assert [n.title for p in notes for n in p] == ["t2", "t1"]


@pytest.mark.parametrize(
    "cursor", ["", "not base64!", "W10", "WyJzaXRlcyJd", "WyJzaXRlcyIsIjEiXQ", "x" * 600]
)
def test_bad_cursors_and_limits_are_refused_naming_them(session: Session, cursor: str) -> None:
    """Junk, an empty array, a key of the wrong type or length: a ReadError on "cursor"."""
    with pytest.raises(ReadError) as refused:
        site_page(session=session, now=T0, after=cursor)
    assert refused.value.field == "cursor"
    for limit in (0, MAX_LIMIT + 1):
        with pytest.raises(ReadError) as refused:
            site_page(session=session, now=T0, limit=limit)
        assert refused.value.field == "limit"
