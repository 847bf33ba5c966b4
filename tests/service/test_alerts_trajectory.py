"""End to end, with answers computed by hand: the plan's SoC forecast and ScheduleInfeasible.

The real monitor polls the real emulator on a frozen clock. Two sites get a 100 kWh
battery at 50 % (the emulator's control API), rated 50 kW both ways, curtailing at 5 % and
95 % with the monitor's own efficiency (η_c = η_d = √0.92), so the monitor's defaults and
the emulated battery follow the same physics:

- site 1: eight quarter-hours at P = 27·√0.92 kW, which draw 27 kWh an hour from storage.
  The 45 kWh above 5 % last exactly 100 minutes: the battery empties 1 h 40 min after the
  plan's start, inside its 7th entry (1:30–1:45). From there on the box curtails; the
  20 minutes it cannot run are the shortfall, P·20 min = 9·√0.92 kWh (8.63 kWh). Lowest
  planned SoC: (50 − 2·27) / 100 = −4 %.
- site 2: +20 / −20 kW in turn (discharge first): never near a limit (lowest 43.5 %),
  no alert.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from receiver.cellect.models import ScheduleEntry
from tests.support.alerts_stack import AlertStack, alert_stack

pytestmark = pytest.mark.anyio
ETA = math.sqrt(0.92)
POWER = 27 * ETA  # kW: 27 kWh an hour out of storage
SHORTFALL = POWER * 20 / 60  # kWh: the last 20 minutes of the plan
BREACH = "cellect_site_plan_breach_timestamp_seconds"
SHORT = "cellect_site_plan_shortfall_joules"
LOW = "cellect_site_planned_soc_min_ratio"
HIGH = "cellect_site_planned_soc_max_ratio"
BATTERY = {
    "capacityKwh": 100.0,
    "socPct": 50.0,
    "ratedChargeKw": 50.0,
    "ratedDischargeKw": 50.0,
    "chargeEfficiency": ETA,
    "dischargeEfficiency": ETA,
}


def _plan(start: datetime, powers: list[float]) -> list[ScheduleEntry]:
    quarter = timedelta(minutes=15)
    return [
        ScheduleEntry(
            start_date=start + i * quarter, end_date=start + (i + 1) * quarter, ess_power_ac=p
        )
        for i, p in enumerate(powers)
    ]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


async def _both_planned(a: AlertStack) -> datetime:
    """The two batteries set, the two plans stored (starting in 10 minutes), and polled:
    returns the plans' start."""
    for site_id in (1, 2):
        await a.control("POST", f"/sites/{site_id}/battery", BATTERY)
    start = a.stack.clock.now() + timedelta(minutes=10)
    a.stack.emulator.store(1, _plan(start, [POWER] * 8))
    a.stack.emulator.store(2, _plan(start, [20.0, -20.0] * 4))
    await a.step(300, "portfolio", "ex_ante")  # the SoC and the plans' powers known
    return start


async def test_a_plan_that_empties_the_battery_fires_at_the_known_minute_with_its_shortfall(
    sqlite_url: str,
) -> None:
    """The forecast puts the breach at the plan's start + 100 min, in the 7th entry, with
    a shortfall of P·20 min (±1 %): a warning at once, critical from an hour before the
    breach; the forecast holds while the battery runs the plan; the emulated box then
    delivers exactly that much less; site 2's plan fires nothing."""
    async with alert_stack(sqlite_url) as a:
        start = await _both_planned(a)
        breach = start + timedelta(minutes=100)
        seventh = start + timedelta(minutes=90)
        at = a.stack.sample(BREACH, site_id="1")
        assert at == pytest.approx(breach.timestamp(), abs=60)  # 1 % of 100 minutes
        shortfall = a.stack.sample(SHORT, site_id="1")
        assert shortfall is not None
        assert shortfall / 3.6e6 == pytest.approx(SHORTFALL, rel=0.01)
        assert a.stack.sample(LOW, site_id="1") == pytest.approx(-0.04, abs=1e-4)
        assert a.stack.sample(HIGH, site_id="1") == pytest.approx(0.5, abs=1e-4)

        await a.step(30)  # group_wait
        [note] = a.notes("ScheduleInfeasible")
        assert note["title"] == "[FIRING:1] ScheduleInfeasible (warning)"
        message = note["message"]
        assert "(1)" in message
        assert "(2)" not in message
        assert f"empties at {_when(breach)}" in message
        entry = f"{_when(seventh)} – {_when(seventh + timedelta(minutes=15))}"
        assert f"during the entry {entry} at {POWER:g} kW" in message
        assert f"shortfall {SHORTFALL:.1f} kWh" in message

        # Run the plan: the portfolio polls bring the SoC the box really has, and the
        # forecast from each of them puts the breach at the same minute.
        while a.stack.clock.now() < breach - timedelta(minutes=61):
            await a.step(300, "portfolio")
            assert a.stack.sample(BREACH, site_id="1") == pytest.approx(breach.timestamp(), abs=60)
        assert not [n for n in a.notes("ScheduleInfeasible") if "(critical)" in n["title"]]
        await a.step(120, "portfolio")  # within the hour before the breach
        await a.step(30)
        critical = [n for n in a.notes("ScheduleInfeasible") if "(critical)" in n["title"]]
        assert [n["title"] for n in critical] == ["[FIRING:1] ScheduleInfeasible (critical)"]
        assert f"shortfall {SHORTFALL:.1f} kWh" in critical[0]["message"]

        # After the plan: the box delivered what the forecast said it could, no more.
        while a.stack.clock.now() < start + timedelta(hours=2):
            await a.step(600, "portfolio")
        [box] = [s for s in (await a.control("GET", "/sites")).json() if s["siteId"] == 1]
        undelivered = POWER * 2 - box["dischargedAcKwh"]
        assert undelivered == pytest.approx(SHORTFALL, rel=0.01)
        assert a.stack.sample(BREACH, site_id="1") is None  # no plan ahead any more
        assert a.stack.sample(BREACH, site_id="2") is None
        assert not [n for n in a.notes("ScheduleInfeasible") if "(2)" in n["message"]]


async def test_a_plan_within_the_limits_exports_its_range_and_fires_nothing(
    sqlite_url: str,
) -> None:
    """Site 2's plan swings the battery a little under 50 % (each quarter-hour draws
    5 kWh/√0.92 or stores 5 kWh·√0.92): its planned min — after the fourth discharge,
    50 − 4·5/√0.92 + 3·5·√0.92 kWh — and max (the start, 50 %) are exported, no breach,
    no alert."""
    async with alert_stack(sqlite_url) as a:
        await _both_planned(a)
        assert a.stack.sample(BREACH, site_id="2") is None
        assert a.stack.sample(SHORT, site_id="2") is None
        low = (50 - 4 * 5 / ETA + 3 * 5 * ETA) / 100
        assert a.stack.sample(LOW, site_id="2") == pytest.approx(low, abs=1e-4)
        assert a.stack.sample(HIGH, site_id="2") == pytest.approx(0.5, abs=1e-4)
        await a.step(30)
        assert all("(2)" not in n["message"] for n in a.notes("ScheduleInfeasible"))
