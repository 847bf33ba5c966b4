"""Delivered against planned, known answers on the emulated clock: a site whose inverter
is derated to 0.8 misses its plan by 20 % and TrackingDeviation fires; a healthy site
tracks its plan and stays silent; the history keeps both, across a restart, once."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import httpx
import pytest
from sqlmodel import Session, select

from receiver.cellect.models import ScheduleEntry
from receiver.cli import main
from receiver.storage.tables import EntryEnergy
from tests.support.alerts_stack import AlertStack, alert_stack
from tests.support.stack import ADMIN, monitor_stack

pytestmark = pytest.mark.anyio
ENTRIES = 6
JOULES_PER_KWH = 3.6e6


def plan(a: AlertStack, site_id: int, start: datetime) -> list[ScheduleEntry]:
    """Six quarter hours alternating discharge and charge at 30 % of the ratings: the
    battery stays clear of its taper bands (below 10 % and above 90 %)."""
    spec = a.stack.emulator.specs[site_id]
    power = 0.3 * min(spec.rated_charge_kw, spec.rated_discharge_kw)
    return [
        ScheduleEntry(
            start_date=start + timedelta(minutes=15 * i),
            end_date=start + timedelta(minutes=15 * (i + 1)),
            ess_power_ac=power if i % 2 == 0 else -power,
        )
        for i in range(ENTRIES)
    ]


def stored(a: AlertStack) -> list[EntryEnergy]:
    with Session(a.stack.monitor.database) as session:
        return list(session.exec(select(EntryEnergy).order_by(EntryEnergy.id)).all())


async def test_a_derated_inverter_misses_the_plan_by_its_derating(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Site 1 at factor 0.8: tracking error 0.20 ± 0.02 and TrackingDeviation names it;
    site 2 tracks within 2 % and no alert names it; counters, history, the report (API
    and CLI alike) and a restart agree."""
    async with alert_stack(database_url) as a:
        await a.control("POST", "/sites/1/inverter", {"factor": 0.8})
        start = a.stack.clock.now() + timedelta(minutes=10)
        for site_id in (1, 2):
            a.stack.emulator.store(site_id, plan(a, site_id, start))
        done = start + timedelta(minutes=15 * ENTRIES + 6)
        while a.stack.clock.now() < done:
            await a.step(60, "portfolio")
        rows = stored(a)
        assert sorted((r.site_id, r.method) for r in rows) == sorted(
            [(1, "power")] * ENTRIES + [(2, "power")] * ENTRIES
        )
        derated = a.stack.sample("cellect_site_tracking_error_ratio", site_id="1")
        healthy = a.stack.sample("cellect_site_tracking_error_ratio", site_id="2")
        assert derated is not None
        assert healthy is not None
        assert derated == pytest.approx(0.20, abs=0.02)
        assert healthy < 0.02
        planned = sum(abs(r.planned_kwh) for r in rows if r.site_id == 2) * JOULES_PER_KWH
        counted = a.stack.sample("cellect_site_energy_planned_joules_total", site_id="2")
        assert counted == pytest.approx(planned)
        delivered = a.stack.sample("cellect_site_energy_delivered_joules_total", site_id="1")
        assert delivered == pytest.approx(0.8 * planned * _ratio(a), rel=0.02)
        await a.step(30)
        notes = a.notes("TrackingDeviation")
        assert len(notes) == 1
        assert f"({1})" in notes[0]["message"]
        assert "site " + a.stack.emulator.specs[2].name not in notes[0]["message"]

        window = {"from": start.isoformat(), "to": (start + timedelta(hours=3)).isoformat()}
        async with httpx.AsyncClient(base_url=a.stack.url, headers=ADMIN) as http:
            answer = await http.get("/api/v1/energy", params=window)
            as_csv = await http.get("/api/v1/energy", params={**window, "format": "csv"})
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        sites = {i["site_id"]: i for i in items if i["row"] == "site"}
        assert sites[1]["tracking_error"] == pytest.approx(0.20, abs=0.02)
        assert sites[2]["tracking_error"] < 0.02
        assert (sites[1]["entries"], sites[1]["failures"]) == (ENTRIES, 0)
        assert sites[1]["availability_share"] == 1.0
        entries = [i for i in items if i["row"] == "entry" and i["site_id"] == 1]
        assert [e["status_name"] for e in entries] == ["Implemented"] * ENTRIES
        assert all(e["deviation_kwh"] == pytest.approx(-0.2 * e["planned_kwh"], rel=0.1)
                   for e in entries)  # fmt: skip
        capsys.readouterr()
        args = ["report", "--from", window["from"], "--to", window["to"], "--format", "csv"]
        assert main([*args, "--database-url", database_url]) == 0
        cli_rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
        api_rows = list(csv.reader(io.StringIO(as_csv.text)))
        assert cli_rows == api_rows
        assert len(api_rows) == 1 + 2 * (1 + ENTRIES)

        await a.stack.restart()
        await a.settle("portfolio")
        await a.step(300, "portfolio")
        assert len(stored(a)) == 2 * ENTRIES  # nothing computed twice
        restored = a.stack.sample("cellect_site_tracking_error_ratio", site_id="1")
        assert restored == pytest.approx(derated)


def _ratio(a: AlertStack) -> float:
    """Site 1's planned energy over site 2's (their ratings differ)."""
    specs = a.stack.emulator.specs
    one, two = (min(specs[s].rated_charge_kw, specs[s].rated_discharge_kw) for s in (1, 2))
    return one / two


async def test_bad_report_input_is_refused_naming_the_field(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API answers 422 naming the parameter; the CLI prints one line and exits 2."""
    async with (
        monitor_stack(sqlite_url, sites=1) as stack,
        httpx.AsyncClient(base_url=stack.url, headers=ADMIN) as http,
    ):
        for params, field in (
            ({"from": "2026-03-02T08:00:00Z", "to": "2026-03-01T08:00:00Z"}, "to"),
            ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
            ({"from": "yesterday"}, "from"),
            ({"site": "-3"}, "site"),
            ({"limit": "10"}, "limit"),
            ({"sites": "1"}, "sites"),
        ):
            answer = await http.get("/api/v1/energy", params=params)
            assert answer.status_code == 422, params
            assert answer.json()["field"] == field, params
        unauthorized = await http.get("/api/v1/energy", headers={"Authorization": "x"})
        assert unauthorized.status_code == 401
    for args, flag in (
        (["--from", "soon", "--to", "2026-03-01T00:00:00Z"], "--from"),
        (["--from", "2026-03-02T00:00:00Z", "--to", "2026-03-01T00:00:00Z"], "--to"),
    ):
        capsys.readouterr()
        assert main(["report", *args, "--database-url", sqlite_url]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert flag in line
