"""Master data (SiteInformation / PortfolioOverview), Availability events, ownership and the
seeded demo portfolio of the emulated API."""

from __future__ import annotations

import pytest

from receiver.cellect.models import SiteInformation
from receiver.emulator.portfolio import demo_portfolio
from tests.support.emulator_api import entry, open_api

PORTFOLIO = ("/v1/resources/sites/master-data", {"symbol": "PortfolioOverview"})
WIRE_FIELDS = {field.alias or name for name, field in SiteInformation.model_fields.items()}


def site_info(site: int) -> tuple[str, dict[str, str]]:
    return f"/v1/resources/sites/{site}/master-data", {"symbol": "SiteInformation"}


@pytest.mark.anyio
async def test_portfolio_overview_lists_the_partners_sites_with_every_field() -> None:
    """PortfolioOverview lists exactly partner 1's sites, each with every SiteInformation field."""
    async with open_api(sites=3) as api:
        path, params = PORTFOLIO
        answer = await api.http.get(path, params=params, headers=await api.auth())
        assert answer.status_code == 200
        sites = answer.json()
        assert [s["siteId"] for s in sites] == [1, 2, 3]
        for site in sites:
            assert set(site) == WIRE_FIELDS
            spec = api.emulator.specs[site["siteId"]]
            assert site["siteName"] == spec.name
            assert site["essInstalledEnergyCapacity"] == spec.capacity_kwh
            assert site["essPowerACRatedCharge"] == spec.rated_charge_kw
            assert site["essPowerACRatedDischarge"] == spec.rated_discharge_kw
            assert site["essSoC"] == pytest.approx(spec.initial_soc_pct, abs=0.01)
            SiteInformation.model_validate(site)


@pytest.mark.anyio
async def test_site_information_shows_live_soc_and_power() -> None:
    """SiteInformation reports the box's power while a charge runs, and the SoC it reached."""
    async with open_api(sites=1) as api:
        assert (await api.store(1, entry(10, 40, -50))).status_code == 200
        before = api.emulator.boxes[1].soc_pct
        api.clock.advance(20 * 60)
        path, params = site_info(1)
        answer = await api.http.get(path, params=params, headers=await api.auth())
        assert answer.status_code == 200
        [site] = answer.json()
        assert site["essPower"] == pytest.approx(-50)
        assert site["essSoC"] > before


@pytest.mark.anyio
async def test_offline_or_silent_site_is_left_out_of_the_portfolio() -> None:
    """A site offline or not reporting is missing from PortfolioOverview and is 30003 alone."""
    async with open_api(sites=3) as api:
        await api.http.post("/_emulator/sites/1/box", json={"online": False})
        await api.http.post("/_emulator/sites/2/box", json={"reporting": False})
        headers = await api.auth()
        path, params = PORTFOLIO
        sites = (await api.http.get(path, params=params, headers=headers)).json()
        assert [s["siteId"] for s in sites] == [3]
        path, params = site_info(2)
        answer = await api.http.get(path, params=params, headers=headers)
        assert (answer.status_code, answer.json()["errorCode"]) == (500, 30003)
        await api.http.post("/_emulator/sites/2/box", json={"reporting": True})
        assert (await api.http.get(path, params=params, headers=headers)).status_code == 200


@pytest.mark.anyio
async def test_partner_two_sees_only_its_own_site() -> None:
    """Partner 2 gets its one site; partner 1's sites are 30087 (master data) and 30004 to it."""
    async with open_api(sites=3) as api:
        headers = await api.auth(partner=2)
        path, params = PORTFOLIO
        sites = (await api.http.get(path, params=params, headers=headers)).json()
        assert [s["siteId"] for s in sites] == [4]
        path, params = site_info(1)
        answer = await api.http.get(path, params=params, headers=headers)
        assert answer.json()["errorCode"] == 30087
        events = await api.http.get(
            "/v1/resources/sites/1/events", params={"symbol": "Availability"}, headers=headers
        )
        assert events.json()["errorCode"] == 30004


@pytest.mark.anyio
async def test_site_information_symbol_without_site_is_30007() -> None:
    """Asking the all-sites resource for SiteInformation is 30007 (siteId required)."""
    async with open_api() as api:
        answer = await api.http.get(
            PORTFOLIO[0], params={"symbol": "SiteInformation"}, headers=await api.auth()
        )
        assert (answer.status_code, answer.json()["errorCode"]) == (400, 30007)


@pytest.mark.anyio
async def test_availability_events_follow_outages() -> None:
    """An outage is an open NotAvailable event, closed with its end date once it ends."""
    async with open_api(sites=1) as api:
        events_path = "/v1/resources/sites/1/events"
        params = {"symbol": "Availability"}
        headers = await api.auth()
        assert (await api.http.get(events_path, params=params, headers=headers)).json() == []
        started = await api.http.post(
            "/_emulator/sites/1/outages", json={"type": "Unplanned", "reason": 4, "source": 3}
        )
        assert started.status_code == 201
        [event] = (await api.http.get(events_path, params=params, headers=headers)).json()
        assert event["availabilityStatus"] == 2
        assert (event["type"], event["reason"], event["source"]) == ("Unplanned", 4, 3)
        assert event["endDate"] is None
        assert event["siteName"] == api.emulator.specs[1].name
        api.clock.advance(600)
        assert (await api.http.delete("/_emulator/sites/1/outages/current")).status_code == 200
        [event] = (await api.http.get(events_path, params=params, headers=headers)).json()
        assert event["endDate"] is not None


def test_demo_portfolio_is_deterministic_and_plausible() -> None:
    """The same seed gives the same portfolio; partner 1 owns 1…N and partner 2 owns N+1."""
    first, again, other = demo_portfolio(8, seed=5), demo_portfolio(8, seed=5), demo_portfolio(8, 6)
    assert first == again
    assert first != other
    assert [s.site_id for s in first.sites_of(1)] == list(range(1, 9))
    assert [s.site_id for s in first.sites_of(2)] == [9]
    assert first.sites_of(3) == []
    for spec in first.sites.values():
        assert 35 < spec.latitude < 72
        assert -11 < spec.longitude < 32
        assert spec.capacity_kwh > 0
        assert 0 < spec.rated_charge_kw <= spec.capacity_kwh
        assert spec.name
