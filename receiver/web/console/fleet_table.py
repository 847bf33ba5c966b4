"""The Fleet page's table: every site's state, filtered, sorted and cut into pages on the server.

It reads the monitor's live picture (`Fleet.rows()`, in memory), not the database: the
picture is what the alert rules judge, it is current to the last poll or webhook, and
at 10,000 sites building, filtering and sorting its rows costs a few tens of
milliseconds — the stored sites query costs more and is older. Only the rows of the
page asked for get the costlier extras: the schedule horizon (a walk of the site's
plan) and the ImplementationFailed count of the last 24 hours (one indexed query).

A site's state is one of three, judged in this order:
- `unavailable`: an availability event says NotAvailable now;
- `stale`: no live data — the latest portfolio left it out, or its last update is older
  than `stale_after_s` (CELLECT_STALE_AFTER_S, the same limit as the metrics and the
  SiteStale alert), or it never had one;
- `available`: otherwise.

Query parameters (bad values are a 400 naming the parameter): `q` (site id or part of
the name), `state`, `alerting=yes`, `sort` (a column, `-` first for descending),
`page` (from 1), `per` (rows per page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from receiver.fleet.picture import SiteRow

STATES = ("available", "unavailable", "stale")
PER_PAGE = (10, 25, 50, 100, 200)
DEFAULT_PER = 50
MAX_QUERY = 100
MAX_PAGE = 1_000_000
_LAST = float("inf")


class BadInput(ValueError):
    """A page's query parameter is wrong: a 400 page naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def state_of(row: SiteRow, stale_before: datetime) -> str:
    """available, unavailable or stale (see the module's docstring): stale when its last
    update is before `stale_before` (now - stale_after_s)."""
    if row.outage is not None:
        return "unavailable"
    if not row.in_portfolio or row.last_update is None or row.last_update < stale_before:
        return "stale"
    return "available"


_STATE_ORDER = {state: index for index, state in enumerate(STATES)}
# Each key is one plain value (no tuple per row); ties keep the site id order, because
# the rows are sorted by id first and Python's sort is stable.
_SORTS: dict[str, Callable[[tuple[SiteRow, str]], Any]] = {
    "id": lambda j: j[0].site_id,
    "name": lambda j: j[0].name.casefold(),
    "soc": lambda j: _LAST if j[0].soc_pct is None else j[0].soc_pct,
    "power": lambda j: _LAST if j[0].power_kw is None else j[0].power_kw,
    "updated": lambda j: j[0].last_update.timestamp() if j[0].last_update else 0.0,
    "state": lambda j: _STATE_ORDER[j[1]],
}
SORT_TITLES = {
    "id": "Site",
    "name": "Name",
    "soc": "SoC",
    "power": "Power",
    "state": "State",
    "updated": "Last update",
}


@dataclass(frozen=True)
class FleetQuery:
    """What the operator asked to see."""

    q: str = ""
    state: str = ""
    alerting: bool = False
    sort: str = "id"
    descending: bool = False
    page: int = 1
    per: int = DEFAULT_PER

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> FleetQuery:
        allowed = {"q", "state", "alerting", "sort", "page", "per", "fragment"}
        for name in params:
            if name not in allowed:
                raise BadInput(name, f"unknown parameter {name!r}")
        q = params.get("q", "").strip()
        if len(q) > MAX_QUERY:
            raise BadInput("q", f"'q' must be at most {MAX_QUERY} characters")
        state = params.get("state", "")
        if state not in ("", *STATES):
            raise BadInput("state", f"'state' must be one of {', '.join(STATES)}")
        alerting = params.get("alerting", "")
        if alerting not in ("", "yes"):
            raise BadInput("alerting", "'alerting' must be yes or empty")
        sort = params.get("sort", "id")
        key = sort.removeprefix("-")
        if key not in _SORTS:
            raise BadInput(
                "sort", f"'sort' must be one of {', '.join(_SORTS)} (- first: descending)"
            )
        return cls(
            q,
            state,
            alerting == "yes",
            key,
            sort.startswith("-"),
            _number(params, "page", 1, MAX_PAGE, 1),
            _per(params),
        )

    def url(self, **changes: Any) -> str:
        """This query's `/?…`, with `changes` (page=…, sort=…) applied; defaults left out."""
        values = {
            "q": self.q,
            "state": self.state,
            "alerting": "yes" if self.alerting else "",
            "sort": ("-" if self.descending else "") + self.sort,
            "page": self.page,
            "per": self.per,
        }
        values.update(changes)
        defaults = {"sort": "id", "page": 1, "per": DEFAULT_PER}
        kept = {k: v for k, v in values.items() if v not in ("", None) and defaults.get(k) != v}
        return "/?" + urlencode(kept) if kept else "/"

    def sort_url(self, key: str) -> str:
        """Sorting by `key`: ascending first, descending when it already sorts ascending."""
        flip = key == self.sort and not self.descending
        return self.url(sort=("-" if flip else "") + key, page=1)


def _number(params: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
        raise BadInput(name, f"{name!r} must be a whole number from {low} to {high}")
    return int(raw)


def _per(params: Mapping[str, str]) -> int:
    per = _number(params, "per", 1, max(PER_PAGE), DEFAULT_PER)
    if per not in PER_PAGE:
        raise BadInput("per", f"'per' must be one of {', '.join(map(str, PER_PAGE))}")
    return per


@dataclass(frozen=True)
class Totals:
    """The whole fleet's figures (not only the filtered sites)."""

    sites: int = 0
    available: int = 0
    unavailable: int = 0
    stale: int = 0
    charging_kw: float = 0.0
    discharging_kw: float = 0.0
    stored_kwh: float = 0.0


@dataclass(frozen=True)
class FleetRow:
    """One row of the page: the site's row, its state and the firing alerts' rules."""

    site: SiteRow
    state: str
    alerts: tuple[str, ...]
    horizon_end: datetime | None = None
    failures_24h: int = 0


@dataclass(frozen=True)
class FleetTable:
    """The page of rows asked for, the number matching, and the fleet's totals."""

    query: FleetQuery
    rows: list[FleetRow]
    matching: int
    totals: Totals
    pages: int
    alerting_sites: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def fleet_table(
    rows: Iterable[SiteRow],
    query: FleetQuery,
    *,
    now: datetime,
    stale_after_s: float,
    alerts: Mapping[int, tuple[str, ...]],
) -> FleetTable:
    """Judge every row's state, total the fleet, filter, sort and cut the page.

    One pass over plain tuples; FleetRow objects are made for the page's rows only (at
    10,000 sites, per-row objects were most of the cost)."""
    stale_before = now - timedelta(seconds=stale_after_s)
    judged: list[tuple[SiteRow, str]] = []
    counts = dict.fromkeys(STATES, 0)
    charging = discharging = stored = 0.0
    for row in rows:
        state = state_of(row, stale_before)
        counts[state] += 1
        power = row.power_kw
        if power is not None and state != "stale":
            if power > 0:
                discharging += power
            else:
                charging -= power
        if row.soc_pct is not None and row.capacity_kwh is not None:
            stored += row.capacity_kwh * row.soc_pct
        judged.append((row, state))
    totals = Totals(
        len(judged), counts["available"], counts["unavailable"], counts["stale"],
        charging, discharging, stored / 100.0,
    )  # fmt: skip
    matching = [j for j in judged if _matches(j[0], j[1], query, alerts)]
    matching.sort(key=_SORTS["id"])
    if query.sort != "id" or query.descending:
        # reverse=True keeps equal keys in their order too: ties stay by ascending id.
        matching.sort(key=_SORTS[query.sort], reverse=query.descending)
    pages = max(1, -(-len(matching) // query.per))
    first = (min(query.page, pages) - 1) * query.per
    shown = [
        FleetRow(row, state, alerts.get(row.site_id, ()))
        for row, state in matching[first : first + query.per]
    ]
    alerting = sum(1 for site_id in alerts if alerts[site_id])
    return FleetTable(query, shown, len(matching), totals, pages, alerting_sites=alerting)


def _matches(
    row: SiteRow, state: str, query: FleetQuery, alerts: Mapping[int, tuple[str, ...]]
) -> bool:
    if query.state and state != query.state:
        return False
    if query.alerting and not alerts.get(row.site_id):
        return False
    if query.q:
        wanted = query.q.casefold()
        return wanted == str(row.site_id) or wanted in row.name.casefold()
    return True
