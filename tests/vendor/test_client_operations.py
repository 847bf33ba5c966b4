"""Each vendor operation against the emulator: typed results, typed errors, local
validation of schedules, and no token in any error or log line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from receiver.cellect.clock import Clock
from receiver.cellect.enums import (
    AvailabilityStatus,
    DowntimeType,
    EventReason,
    EventSource,
    ImplementationStatus,
)
from receiver.cellect.errors import (
    CellectApiError,
    InvalidSiteOwnership,
    PartnerAccountSiteNotFound,
    SiteDataFetchFailed,
)
from receiver.cellect.models import AvailabilityEvent, SiteInformation, TimeSeriesResult
from receiver.emulator.cloud import Emulator
from receiver.vendor.client import (
    CellectClient,
    RefreshTokenRejected,
    RetriesExhausted,
    ScheduleRejected,
)
from tests.support.vendor import SITES, Control, Recorder, ratings_of, schedule

pytestmark = pytest.mark.anyio

OTHER_PARTNERS_SITE = SITES + 1


async def test_posted_schedule_reads_back_as_ex_ante(
    client: CellectClient, emulator: Emulator, clock: Clock
) -> None:
    """A posted schedule comes back from ExAnte as typed results, in progress then implemented."""
    entries = schedule(clock)
    sent = await client.post_schedule(1, entries, ratings=ratings_of(emulator, 1))
    assert sent == entries
    window = (clock.now(), clock.now() + timedelta(hours=2))
    planned = await client.ex_ante(1, *window)
    assert all(isinstance(result, TimeSeriesResult) for result in planned)
    assert [(r.start_date, r.ess_power_ac) for r in planned] == [
        (e.start_date, e.ess_power_ac) for e in entries
    ]
    assert {r.implementation_status for r in planned} == {ImplementationStatus.IN_PROGRESS}
    clock.advance(60)  # past the box's transfer delay
    planned = await client.ex_ante(1, clock.now(), clock.now() + timedelta(hours=2))
    assert {r.implementation_status for r in planned} == {ImplementationStatus.IMPLEMENTED}


async def test_schedule_as_body_with_partner_account(
    client: CellectClient, emulator: Emulator, clock: Clock
) -> None:
    """A raw wire body and a partner account id are accepted and sent."""
    body = {"data": [entry.wire() for entry in schedule(clock, count=2)]}
    site = await client.site_information(2)
    sent = await client.post_schedule(2, body, ratings=site, partner_account_id=1)
    assert len(sent) == 2


async def test_deleted_schedule_reads_back_as_deleted(
    client: CellectClient, emulator: Emulator, clock: Clock
) -> None:
    """delete_schedule marks the entries of the window Deleted."""
    entries = schedule(clock, count=2)
    await client.post_schedule(1, entries, ratings=ratings_of(emulator, 1))
    await client.delete_schedule(1, entries[0].start_date, entries[-1].end_date)
    planned = await client.ex_ante(1, clock.now(), clock.now() + timedelta(hours=1))
    assert {r.implementation_status for r in planned} == {ImplementationStatus.DELETED}


async def test_executed_schedule_reads_back_as_ex_post(
    client: CellectClient, emulator: Emulator, clock: Clock
) -> None:
    """Once its time has passed, a schedule is returned by ExPost."""
    start = clock.now()
    entries = schedule(clock, count=2)
    await client.post_schedule(1, entries, ratings=ratings_of(emulator, 1))
    clock.advance(3600)
    executed = await client.ex_post(1, start, clock.now() - timedelta(minutes=1))
    assert [r.start_date for r in executed] == [e.start_date for e in entries]
    assert all(isinstance(r, TimeSeriesResult) for r in executed)


async def test_bad_schedule_is_rejected_before_it_leaves(
    client: CellectClient, emulator: Emulator, clock: Clock, recorder: Recorder
) -> None:
    """A schedule breaking the rules raises ScheduleRejected and nothing reaches the vendor."""
    entries = schedule(clock, count=2, power_kw=10_000.0)
    with pytest.raises(ScheduleRejected) as caught:
        await client.post_schedule(1, entries, ratings=ratings_of(emulator, 1))
    codes = {violation.code for violation in caught.value.violations}
    assert codes == {30113, 30114}
    assert caught.value.code in codes
    assert recorder.requests == []
    assert emulator.box(1).entries_between(clock.now(), clock.now() + timedelta(hours=48)) == []


async def test_site_information_is_typed(client: CellectClient, emulator: Emulator) -> None:
    """site_information returns one SiteInformation with the site's ratings."""
    site = await client.site_information(2)
    assert isinstance(site, SiteInformation)
    assert site.site_id == 2
    assert site.ess_power_ac_rated_charge == emulator.specs[2].rated_charge_kw


async def test_portfolio_overview_lists_the_partners_sites(client: CellectClient) -> None:
    """portfolio_overview returns a SiteInformation per site of the partner, no other's."""
    sites = await client.portfolio_overview()
    assert all(isinstance(site, SiteInformation) for site in sites)
    assert sorted(site.site_id for site in sites) == list(range(1, SITES + 1))


async def test_availability_events_are_typed(
    client: CellectClient, emulator: Emulator, clock: Clock
) -> None:
    """An outage of the box is returned as an AvailabilityEvent, open while it lasts."""
    assert await client.availability_events(1) == []
    emulator.box(1).start_outage(
        now=clock.now(),
        downtime_type=DowntimeType.UNPLANNED,
        reason=EventReason.OUTAGE,
        source=EventSource.INVERTER,
        duration_s=None,
    )
    [event] = await client.availability_events(1)
    assert isinstance(event, AvailabilityEvent)
    assert event.availability_status is AvailabilityStatus.NOT_AVAILABLE
    assert (event.type, event.source, event.end_date) == (
        DowntimeType.UNPLANNED,
        EventSource.INVERTER,
        None,
    )


async def test_errors_carry_code_and_status(client: CellectClient) -> None:
    """Another partner's site gives typed errors with the Cellect code and HTTP status."""
    with pytest.raises(InvalidSiteOwnership) as events_error:
        await client.availability_events(OTHER_PARTNERS_SITE)
    with pytest.raises(PartnerAccountSiteNotFound) as master_error:
        await client.site_information(OTHER_PARTNERS_SITE)
    assert (events_error.value.code, events_error.value.http_status) == (30004, 403)
    assert (master_error.value.code, master_error.value.http_status) == (30087, 404)


async def test_offline_site_is_a_data_fetch_failure(
    client: CellectClient, emulator: Emulator, clock: Clock
) -> None:
    """A site whose box is offline answers 30003; after the retries its code is kept."""
    emulator.box(1).set_online(False, now=clock.now())
    with pytest.raises(RetriesExhausted) as caught:
        await client.site_information(1)
    assert (caught.value.code, caught.value.http_status) == (30003, 500)
    assert isinstance(caught.value.last_error, SiteDataFetchFailed)


async def test_no_token_in_errors_or_logs(
    make_client: Callable[..., CellectClient],
    http: httpx.AsyncClient,
    emulator: Emulator,
    control: Control,
    clock: Clock,
    refresh_token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither the refresh nor the access token appears in any exception or log record."""
    # Site 2's five 500s would open the circuit, and the calls after them must go out.
    client = make_client(circuit_failure_threshold=20)
    caplog.set_level(logging.DEBUG)
    sent: set[str] = set()

    async def note_credentials(request: httpx.Request) -> None:
        sent.add(request.headers.get("Authorization", "").removeprefix("Bearer "))

    http.event_hooks["request"].append(note_credentials)
    errors: list[BaseException] = []
    await client.portfolio_overview()
    emulator.box(2).set_online(False, now=clock.now())
    for call in (
        client.site_information(2),
        client.availability_events(OTHER_PARTNERS_SITE),
        client.post_schedule(1, schedule(clock, power_kw=1e9), ratings=ratings_of(emulator, 1)),
    ):
        try:
            await call
        except (CellectApiError, RetriesExhausted, ScheduleRejected) as exc:
            errors.append(exc)
    await control.revoke_refresh_tokens()
    await control.expire_access_tokens()
    with pytest.raises(RefreshTokenRejected) as rejected:
        await client.portfolio_overview()
    errors.append(rejected.value)
    assert len(errors) == 4
    texts = [repr(e) + str(e) + str(e.__cause__) for e in errors] + [
        record.getMessage() for record in caplog.records
    ]
    assert refresh_token in sent
    assert len(sent) == 2
    for text in texts:
        for secret in sent:
            assert secret not in text
