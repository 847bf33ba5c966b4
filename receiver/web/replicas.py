"""Who runs and who holds what: the live replicas and their leases, for operators.

Three views of it:
- `/readyz` says what *this* replica holds, as its own lease rounds last saw it (in
  memory, no query: `holding`);
- the console's Service page and `GET /api/v1/replicas` list every live replica from
  the database — the registry and the unexpired leases (`replica_rows`, read in a
  worker thread) — with this one marked.

A role is a plain word: `leader` holds the `alerts` lease (it judges the rules and
sends the notifications), `member` holds buckets of sites or the `portfolio` lease but
not `alerts`, `standby` holds nothing yet (a replica that has just started, or one
beyond the 256 buckets). Every replica takes webhooks whatever it holds, so a role never
makes a replica unready. On SQLite there are no leases: one monitor does all the work,
its role is `single`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from anyio import to_thread
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.coordination import leases, registry
from receiver.coordination.buckets import BUCKETS, POLL
from receiver.service import Monitor
from receiver.storage.coordination_tables import Replica
from receiver.storage.engine import session_factory
from receiver.web.read_api import PREFIX, BadParameter, Query, csv_response, one_page, refusal
from receiver.web.read_rows import CsvShape, plain

PORTFOLIO, ALERTS = "portfolio", "alerts"
SINGLE = "single"


def role_of(*, buckets: int, portfolio: bool, alerts: bool) -> str:
    """`leader` (holds alerts), `member` (holds something else), `standby` (nothing)."""
    if alerts:
        return "leader"
    return "member" if buckets or portfolio else "standby"


@dataclass(frozen=True)
class Holding:
    """What this replica holds by its own last lease round (None on SQLite: no leases)."""

    id: str | None
    role: str
    buckets: int | None = None
    portfolio: bool | None = None
    alerts: bool | None = None


def holding(monitor: Monitor) -> Holding:
    """This replica's leases, from memory: the coordinator's view after its last round
    (none once a lease TTL passed without a good round)."""
    replica = monitor.replica
    if replica is None:
        identity = monitor.presence.identity
        return Holding(identity.id if identity else None, SINGLE)
    buckets = len(replica.buckets)
    portfolio, alerts = replica.leads(PORTFOLIO), replica.leads(ALERTS)
    role = role_of(buckets=buckets, portfolio=portfolio, alerts=alerts)
    return Holding(replica.id, role, buckets, portfolio, alerts)


def holding_json(held: Holding) -> dict[str, Any]:
    if held.role == SINGLE:
        return {"id": held.id, "role": SINGLE}
    return asdict(held)


@dataclass(frozen=True)
class ReplicaRow:
    """A live replica as the registry has it, and the unexpired leases it holds."""

    id: str
    host: str
    pid: int
    version: str
    schema_revision: str | None
    started_at: datetime
    heartbeat_at: datetime
    current: bool  # the replica that answers this request
    role: str
    buckets: int | None  # None on SQLite (no leases)
    portfolio: bool | None
    alerts: bool | None


@dataclass(frozen=True)
class Replicas:
    """The live replicas by id, and how many buckets no live replica holds."""

    backend: str
    current: str | None
    rows: list[ReplicaRow]
    buckets_unheld: int | None  # None on SQLite


def replica_rows(*, session: Session, ttl_s: float, current: str | None, leased: bool) -> Replicas:
    """The live replicas (heartbeat within `ttl_s`) and, when `leased` (PostgreSQL),
    what each holds. A lease still held by a replica no longer live (crashed, not yet
    expired) counts as unheld: no live replica works on it."""
    live = registry.live_replicas(session=session, ttl_s=ttl_s)
    backend = session.get_bind().dialect.name
    if not leased:
        rows = [_row(r, current, SINGLE, None, None, None) for r in live]
        return Replicas(backend, current, rows, None)
    counts = Counter(leases.owners(session=session, kind=POLL).values())
    portfolio = leases.owners(session=session, kind=PORTFOLIO).get(0)
    alerts = leases.owners(session=session, kind=ALERTS).get(0)
    rows = []
    for r in live:
        n = counts[r.id]
        role = role_of(buckets=n, portfolio=portfolio == r.id, alerts=alerts == r.id)
        rows.append(_row(r, current, role, n, portfolio == r.id, alerts == r.id))
    held = sum(row.buckets or 0 for row in rows)
    return Replicas(backend, current, rows, BUCKETS - held)


def _row(
    r: Replica,
    current: str | None,
    role: str,
    n: int | None,
    portfolio: bool | None,
    alerts: bool | None,
) -> ReplicaRow:
    return ReplicaRow(
        r.id, r.host, r.pid, r.version, r.schema_revision, r.started_at, r.heartbeat_at,
        r.id == current, role, n, portfolio, alerts,
    )  # fmt: skip


async def read_replicas(monitor: Monitor) -> Replicas:
    """`replica_rows` for this monitor, in a worker thread on a session of its own."""
    replica = monitor.replica
    if replica is not None:
        current: str | None = replica.id
        ttl_s = replica.coordinator.replica_ttl_s
    else:
        identity = monitor.presence.identity
        current, ttl_s = (identity.id if identity else None), monitor.presence.ttl_s

    def read() -> Replicas:
        with session_factory(monitor.database)() as session:
            return replica_rows(
                session=session, ttl_s=ttl_s, current=current, leased=replica is not None
            )

    return await to_thread.run_sync(read)


REPLICAS_CSV: CsvShape[ReplicaRow] = CsvShape(
    ("id", "host", "pid", "version", "schema_revision", "started_at", "heartbeat_at", "current",
     "role", "buckets", "portfolio", "alerts"),
    lambda r: (r.id, r.host, r.pid, r.version, r.schema_revision, r.started_at, r.heartbeat_at,
               r.current, r.role, r.buckets, r.portfolio, r.alerts),
)  # fmt: skip


def replica_routes(monitor: Monitor) -> list[Route]:
    """`GET /api/v1/replicas`, for the app to mount behind its admin-token guard."""

    async def replicas(request: Request) -> Response:
        try:
            query = Query.of(request, ())
            for name in ("cursor", "limit"):
                if name in query.values:
                    raise BadParameter(name, "the replicas come in one piece (no paging)")
            csv = query.csv
        except BadParameter as exc:
            return refusal(exc)
        found = await read_replicas(monitor)
        if csv:
            return csv_response(one_page(found.rows), REPLICAS_CSV, "replicas.csv")
        body = {
            "backend": found.backend,
            "current": found.current,
            "buckets_total": BUCKETS if found.buckets_unheld is not None else None,
            "buckets_unheld": found.buckets_unheld,
            "items": [plain(asdict(row)) for row in found.rows],
            "next": None,
        }
        return JSONResponse(body)

    return [Route(PREFIX + "/replicas", replicas, methods=["GET"])]
