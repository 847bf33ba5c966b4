"""Control endpoints of the emulated boxes: link, reporting and outages (`/_emulator/sites`).

`GET /sites` shows each box's live state; `POST /sites/{id}/box {"online", "reporting"}`
cuts or restores its link or its reporting; `POST /sites/{id}/battery` gives the site
another battery (capacity, SoC, ratings, SoC limits, efficiencies: any of them) from now
on, so a test starts from a state it computed by hand; `POST /sites/{id}/outages` announces an
outage (planned ones ahead with `starts_in_s`), `DELETE /sites/{id}/outages/current` ends
the running one. `POST /sites/{id}/inverter {"factor": 0.8}` derates the box's inverter
(every AC power it delivers × factor), `DELETE /sites/{id}/inverter` restores it;
`POST /sites/{id}/meter {"noise": 0.01}` sets the meter's relative noise (0: exact).
Unknown sites are 404 naming `siteId`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.cellect.timestamps import format_timestamp
from receiver.emulator import control_bodies as bodies
from receiver.emulator.box import Box
from receiver.emulator.cloud import Emulator
from receiver.emulator.control_bodies import ControlError, parse, read_payload
from receiver.emulator.state import Outage


def _box_view(site_id: int, box: Box) -> dict[str, Any]:
    return {
        "siteId": site_id,
        "online": box.online,
        "reporting": box.reporting,
        "available": box.available,
        "socPct": round(box.soc_pct, 3),
        "powerKw": round(box.power_kw, 3),
        "capacityKwh": box.spec.capacity_kwh,
        "chargedAcKwh": box.charged_ac_kwh,
        "dischargedAcKwh": box.discharged_ac_kwh,
        "inverterFactor": box.inverter_factor,
        "meterNoise": box.meter_noise,
    }


def _outage_view(outage: Outage) -> dict[str, Any]:
    return {
        "eventId": outage.event_id,
        "siteId": outage.site_id,
        "type": outage.downtime_type.value,
        "reason": int(outage.reason),
        "source": int(outage.source),
        "startDate": format_timestamp(outage.start),
        "endDate": format_timestamp(outage.end) if outage.end else None,
    }


class SiteControl:
    """The box knobs, bound to one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def _site(self, request: Request) -> tuple[int, Box]:
        site_id = request.path_params["site_id"]
        if site_id not in self.emulator.boxes:
            raise ControlError("siteId", f"no site {site_id}", status=404)
        return site_id, self.emulator.box(site_id)

    async def list_sites(self, request: Request) -> Response:
        self.emulator.sync()
        boxes = self.emulator.boxes.items()
        return JSONResponse([_box_view(site_id, box) for site_id, box in boxes])

    async def set_box(self, request: Request) -> Response:
        site_id, box = self._site(request)
        body = parse(bodies.BoxBody, await read_payload(request))
        if body.online is None and body.reporting is None:
            raise ControlError("online", "give online and/or reporting")
        now = self.emulator.clock.now()
        if body.online is not None:
            self.emulator.publish(box.set_online(body.online, now=now))
        if body.reporting is not None:
            box.set_reporting(body.reporting, now=now)
        self.emulator.sync()
        return JSONResponse(_box_view(site_id, box))

    async def set_battery(self, request: Request) -> Response:
        site_id, box = self._site(request)
        body = parse(bodies.BatteryBody, await read_payload(request))
        changed = {
            name: value
            for name, value in body.model_dump(exclude={"soc_pct"}).items()
            if value is not None
        }
        spec = replace(box.spec, **changed)
        if not 0 <= spec.min_soc_pct < spec.max_soc_pct <= 100:
            raise ControlError("minSocPct", "minSocPct must be below maxSocPct")
        box.set_battery(spec, soc_pct=body.soc_pct, now=self.emulator.clock.now())
        self.emulator.specs[site_id] = spec
        self.emulator.sync()
        return JSONResponse(_box_view(site_id, box))

    async def start_outage(self, request: Request) -> Response:
        _, box = self._site(request)
        body = parse(bodies.OutageBody, await read_payload(request))
        outage = box.start_outage(
            now=self.emulator.clock.now(),
            downtime_type=body.type,
            reason=body.reason,
            source=body.source,
            duration_s=body.duration_s,
            starts_in_s=body.starts_in_s,
        )
        self.emulator.sync()
        return JSONResponse(_outage_view(outage), status_code=201)

    async def end_outage(self, request: Request) -> Response:
        site_id, box = self._site(request)
        outage = box.end_outage(now=self.emulator.clock.now())
        self.emulator.sync()
        if outage is None:
            raise ControlError("siteId", f"site {site_id} has no running outage", status=404)
        return JSONResponse(_outage_view(outage))

    async def set_inverter(self, request: Request) -> Response:
        site_id, box = self._site(request)
        body = parse(bodies.InverterBody, await read_payload(request))
        self.emulator.publish(box.set_inverter_factor(body.factor, now=self.emulator.clock.now()))
        self.emulator.sync()
        return JSONResponse(_box_view(site_id, box))

    async def restore_inverter(self, request: Request) -> Response:
        site_id, box = self._site(request)
        self.emulator.publish(box.set_inverter_factor(1.0, now=self.emulator.clock.now()))
        self.emulator.sync()
        return JSONResponse(_box_view(site_id, box))

    async def set_meter(self, request: Request) -> Response:
        site_id, box = self._site(request)
        body = parse(bodies.MeterBody, await read_payload(request))
        box.set_meter_noise(body.noise)
        return JSONResponse(_box_view(site_id, box))
