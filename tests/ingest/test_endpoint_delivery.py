"""The served endpoint's delivery semantics on SQLite and PostgreSQL: idempotent, each
report one transition of one entry, counted, and an ImplementationFailed status reaching
the alerting."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, col, select

from receiver.alerting.rules import when
from receiver.storage.alert_tables import AlertRecord
from receiver.storage.tables import ScheduleEntryRecord, WebhookDelivery
from receiver.web.app import WEBHOOK_PATH
from tests.support.served_receiver import SLOT, START, body, entry, receiver_app, stamp
from tests.support.stack import WEBHOOK_SECRET, monitor_stack, until

pytestmark = pytest.mark.anyio


async def test_a_redelivery_is_acknowledged_as_duplicate_and_stored_once(
    database_url: str,
) -> None:
    """The same content again (even re-spelled) gets 200 with duplicate true; one row."""
    async with receiver_app(database_url) as app:
        first = await app.post(body(1, entry(1, 2)))
        respelled = json.dumps({"schedule": [entry(1, 2)], "siteId": 1}, indent=2).encode()
        again = await app.post(respelled)
        assert first.status_code == again.status_code == 200
        assert first.json()["duplicate"] is False
        assert again.json()["duplicate"] is True
        assert app.counts() == (1, 1, 1)
        assert (app.outcomes("accepted"), app.outcomes("duplicate")) == (1, 1)


async def test_ten_concurrent_copies_are_all_acknowledged_and_stored_once(
    database_url: str,
) -> None:
    """The same delivery sent 10 times at once: ten 200s, exactly one new, one row."""
    async with receiver_app(database_url) as app:
        content = body(3, entry(1, 1), entry(2, 1))
        responses = await asyncio.gather(*(app.post(content) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10
        assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * 9
        assert len({r.json()["deliveryId"] for r in responses if not r.json()["duplicate"]}) == 1
        assert app.counts() == (1, 2, 2)


async def test_a_slot_reported_again_after_its_deletion_is_a_new_entry(database_url: str) -> None:
    """Deleted, then InProgress and Implemented for the same slot: the deleted entry stays
    Deleted and a second entry of the slot is Implemented; every raw delivery is kept."""
    async with receiver_app(database_url) as app:
        assert (await app.post(body(1, entry(1, 4)))).status_code == 200
        late = await app.post(body(1, entry(1, 1)))
        assert late.status_code == 200
        assert late.json()["duplicate"] is False
        assert (await app.post(body(1, entry(1, 2)))).status_code == 200
        with Session(app.monitor.database) as session:
            statuses = session.exec(
                select(ScheduleEntryRecord.status).order_by(col(ScheduleEntryRecord.generation))
            ).all()
            bodies = session.exec(select(WebhookDelivery.body).order_by(col(WebhookDelivery.id)))
            kept = [json.loads(b)["schedule"][0]["status"] for b in bodies.all()]
        assert statuses == [4, 2]
        assert kept == [4, 1, 2]


async def test_accepted_deliveries_update_the_schedule_metrics(database_url: str) -> None:
    """Each status reported for an entry counts once in cellect_schedule_entries_total; a
    duplicate delivery counts nothing, and a second InProgress for a slot whose entry
    already reported one is the slot's next entry, counted as such."""
    async with receiver_app(database_url) as app:
        await app.post(body(5, entry(1, 1), entry(2, 1)))
        await app.post(body(5, entry(1, 2), entry(2, 3)))
        await app.post(body(5, entry(1, 2), entry(2, 3)))  # a duplicate: not counted again
        await app.post(body(5, entry(1, 1)))  # entry 1 had its 1: a re-planned slot
        counts = {
            status: app.sample("cellect_schedule_entries_total", site_id="5", status=status)
            for status in ("in_progress", "implemented", "implementation_failed")
        }
        assert counts == {"in_progress": 3, "implemented": 1, "implementation_failed": 1}
        failures = app.sample("cellect_schedule_implementation_failures_total", site_id="5")
        assert failures == 1


async def test_an_implementation_failed_delivery_fires_the_alert_within_a_cycle(
    database_url: str,
) -> None:
    """A status-3 webhook makes ImplementationFailed fire within seconds of emulated time."""
    async with monitor_stack(database_url, sites=2, subscribe=False) as stack:
        await until(lambda: stack.monitor.fleet.site_ids, what="the first portfolio poll")
        start = stack.clock.now() + timedelta(minutes=30)
        failed = {"start": stamp(start), "end": stamp(start + timedelta(minutes=15)), "status": 3}
        async with httpx.AsyncClient(base_url=stack.url) as http:
            response = await http.post(
                WEBHOOK_PATH,
                params={"token": WEBHOOK_SECRET},
                json={"siteId": 2, "schedule": [failed]},
            )
        assert response.status_code == 200
        await stack.advance(5)

        def firing() -> list[AlertRecord]:
            with Session(stack.monitor.database) as session:
                query = select(AlertRecord).where(AlertRecord.rule == "ImplementationFailed")
                return [a for a in session.exec(query).all() if a.state == "firing"]

        alerts = await until(firing, within=10, what="the ImplementationFailed alert")
        assert [a.labels["site_id"] for a in alerts] == ["2"]
        gauge = stack.sample(
            "cellect_alerts_firing", rule="ImplementationFailed", severity="critical"
        )
        assert gauge == 1


async def test_webhooks_only_mode_still_alerts_on_a_failed_entry(database_url: str) -> None:
    """Without a refresh token (nothing polled) a status-3 webhook still raises
    ImplementationFailed for the site it names, and no DataStale is invented."""
    async with receiver_app(database_url) as app:
        started = app.monitor.alert_loop.cycles_started
        response = await app.post(body(7, entry(4, 3)))
        assert response.status_code == 200
        await until(lambda: app.monitor.alert_loop.cycles_done > started, what="an alert cycle")

        def firing() -> dict[str, dict[str, str]]:
            with Session(app.monitor.database) as session:
                rows = session.exec(select(AlertRecord)).all()
                return {a.rule: a.labels for a in rows if a.state == "firing"}

        alerts = await until(firing, within=10, what="the ImplementationFailed alert")
        assert alerts == {"ImplementationFailed": alerts["ImplementationFailed"]}
        assert alerts["ImplementationFailed"]["site_id"] == "7"
        assert alerts["ImplementationFailed"]["site_name"] == "site 7"


async def test_a_storm_of_failures_is_one_alert_per_site_until_an_hour_passes_quietly(
    database_url: str,
) -> None:
    """Thirty failed entries over two sites fire two ImplementationFailed alerts (each
    naming its site's first failed entry), which resolve an hour after the last report;
    a later failure starts a new run that fires again."""
    async with receiver_app(database_url) as app:

        def firing() -> dict[str, AlertRecord]:
            with Session(app.monitor.database) as session:
                rows = session.exec(select(AlertRecord)).all()
                return {
                    r.labels["site_id"]: r
                    for r in rows
                    if r.state == "firing" and r.rule == "ImplementationFailed"
                }

        async def cycle() -> None:
            started = app.monitor.alert_loop.cycles_started
            app.monitor.wake_alerts()
            await until(lambda: app.monitor.alert_loop.cycles_done > started, what="an alert cycle")

        for slot in range(15):
            for site_id in (3, 4):
                assert (await app.post(body(site_id, entry(slot, 3)))).status_code == 200
            app.clock.advance(60)  # a failure a minute, for a quarter of an hour
        await cycle()
        alerts = firing()
        assert sorted(alerts) == ["3", "4"]
        first = when(START)
        assert all(
            f"schedule entry {first}" in a.annotations["description"] for a in alerts.values()
        )

        app.clock.advance(3600 - 180)  # over an hour after the first failure: still firing
        await cycle()
        assert sorted(firing()) == ["3", "4"]
        app.clock.advance(120)  # an hour after the latest failure
        await cycle()
        assert firing() == {}

        assert (await app.post(body(3, entry(20, 3)))).status_code == 200
        await cycle()
        again = firing()
        assert sorted(again) == ["3"]
        assert f"schedule entry {when(START + SLOT * 20)}" in again["3"].annotations["description"]
