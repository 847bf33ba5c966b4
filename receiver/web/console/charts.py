"""The Site page's chart, as hand-written SVG rendered on the server (no script, no library).

One time axis for four bands, top to bottom: state of charge (0–100 %), power (discharge
up, charge down, scaled to the site's ratings or the largest value seen), the schedule
(one bar per entry: planned power, coloured by its status — every generation, so an
overwritten plan shows under its replacement) and availability events (NotAvailable in
red). Colours come from classes in console.css (the page's CSP allows no inline style),
so dark mode applies; every bar has a <title> (a tooltip, and text for screen readers).
The SoC and power lines are polylines of the downsampled buckets: `data-points` on the
<svg> says how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.reads.events import EventView
from receiver.storage.reads.measurements import MeasurementBucket
from receiver.storage.reads.schedule import ScheduleEntryView

WIDTH = 1000
SOC = (10, 110)  # top and bottom of each band, in viewBox units
POWER = (125, 225)
PLAN = (240, 290)
EVENTS = (305, 320)
HEIGHT = 330
STATUS_CLASS = {
    int(ImplementationStatus.IN_PROGRESS): "st-inprogress",
    int(ImplementationStatus.IMPLEMENTED): "st-implemented",
    int(ImplementationStatus.IMPLEMENTATION_FAILED): "st-failed",
    int(ImplementationStatus.DELETED): "st-deleted",
    int(ImplementationStatus.OVERWRITTEN): "st-overwritten",
}
STATUS_NAME = {
    int(s): s.name.replace("_", " ").title().replace(" ", "") for s in ImplementationStatus
}


def site_chart(
    *,
    start: datetime,
    end: datetime,
    buckets: Sequence[MeasurementBucket],
    entries: Sequence[ScheduleEntryView],
    events: Sequence[EventView],
    rated_kw: float,
) -> Markup:
    """The SVG of one site's window [start, end)."""
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(min(max((at - start).total_seconds() / span, 0.0), 1.0) * WIDTH, 1)

    scale = max(
        [rated_kw, 0.1]
        + [abs(b.power_min) for b in buckets]
        + [abs(b.power_max) for b in buckets]
        + [abs(e.power_kw) for e in entries if e.power_kw is not None]
    )
    mid = (POWER[0] + POWER[1]) / 2

    def power_y(kw: float) -> float:
        return round(mid - kw / scale * (POWER[1] - POWER[0]) / 2, 1)

    soc = " ".join(
        f"{x(b.at)},{round(SOC[1] - b.soc_pct / 100 * (SOC[1] - SOC[0]), 1)}" for b in buckets
    )
    power = " ".join(f"{x(b.at)},{power_y(b.power_kw)}" for b in buckets)
    parts = [
        Markup(
            '<svg class="chart" viewBox="0 0 {} {}" preserveAspectRatio="none" role="img" '
            'aria-labelledby="chart-title" data-points="{}">'
        ).format(WIDTH, HEIGHT, len(buckets)),
        Markup(
            '<title id="chart-title">State of charge, power, schedule and availability '
            "over the chosen range</title>"
        ),
        _band(SOC, "SoC %"),
        _band(POWER, "power"),
        _band(PLAN, "schedule"),
        _band(EVENTS, "events"),
        Markup('<line class="zero" x1="0" x2="{}" y1="{}" y2="{}"/>').format(WIDTH, mid, mid),
    ]
    if buckets:
        parts.append(Markup('<polyline class="soc" points="{}"/>').format(soc))
        parts.append(Markup('<polyline class="power" points="{}"/>').format(power))
    plan_mid = (PLAN[0] + PLAN[1]) / 2
    for e in entries:
        kw = e.power_kw or 0.0
        h = max(abs(kw) / scale * (PLAN[1] - PLAN[0]) / 2, 1.0)
        top = plan_mid - h if kw > 0 else plan_mid
        left, right = x(e.start_at), x(e.end_at)
        label = (
            f"{STATUS_NAME.get(e.status, e.status)}: {kw:g} kW planned, generation {e.generation}"
        )
        parts.append(
            Markup(
                '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>'
            ).format(
                STATUS_CLASS.get(e.status, "st-other"),
                left,
                round(top, 1),
                max(round(right - left, 1), 0.5),
                round(h, 1),
                label,
            )
        )
    for ev in events:
        left, right = x(ev.start_at), x(ev.end_at or end)
        down = ev.availability_status != 1
        label = f"{'NotAvailable' if down else 'Available'} {ev.downtime_type}, reason {ev.reason}"
        parts.append(
            Markup(
                '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>'
            ).format(
                "ev-down" if down else "ev-up",
                left,
                EVENTS[0],
                max(round(right - left, 1), 1.0),
                EVENTS[1] - EVENTS[0],
                label,
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _band(band: tuple[int, int], name: str) -> Markup:
    return Markup(
        '<rect class="band" x="0" y="{}" width="{}" height="{}"><title>{}</title></rect>'
    ).format(band[0], WIDTH, band[1] - band[0], name)
