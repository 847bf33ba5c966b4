"""Delivered against planned, known answers on the emulated clock: a site whose inverter
is derated to 0.8 misses its plan by 20 % and TrackingDeviation fires; a healthy site
tracks its plan and stays silent; the history keeps both, across a restart, once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from receiver.cellect.models import ScheduleEntry
from receiver.storage.tables import EntryEnergy
from tests.support.alerts_stack import AlertStack, alert_stack

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


async def test_a_derated_inverter_misses_the_plan_by_its_derating(database_url: str) -> None:
    """Site 1 at factor 0.8: tracking error 0.20 ± 0.02 and TrackingDeviation names it;
    site 2 tracks within 2 % and no alert names it; counters and history agree."""
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
