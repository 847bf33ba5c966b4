"""The replica's coordination, read at each scrape: who this replica is, what it holds.

- `cellect_replica_info{replica_id,host,version} 1`: this replica (a restart is a new one);
- `cellect_leases_held{kind}`: buckets of sites it polls (`poll`), and 1/0 for each
  singleton job it leads (`portfolio`: the one PortfolioOverview call; `alerts`: rule
  evaluation and notifications) — every kind is exported, at 0 when nothing is held;
- `cellect_lease_changes_total{kind,change}`: leases `acquired`, `lost` (taken away, or
  expired unrenewed) and `released` (handed back) since the start.

Only a replica on PostgreSQL exports them (on SQLite one monitor does everything).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

KINDS = ("poll", "portfolio", "alerts")
CHANGES = ("acquired", "lost", "released")


@dataclass(frozen=True)
class ReplicaState:
    replica_id: str
    host: str
    version: str
    held: Mapping[str, int]  # kind → buckets held (singletons: 0 or 1)
    changes: Mapping[tuple[str, str], int]  # (kind, change) → how many


class ReplicaCollector(Collector):
    def __init__(self, state: Callable[[], ReplicaState]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        info, held, changes = self._families()
        state = self._state()
        info.add_metric((state.replica_id, state.host, state.version), 1.0)
        for kind in KINDS:
            held.add_metric((kind,), float(state.held.get(kind, 0)))
            for change in CHANGES:
                changes.add_metric((kind, change), float(state.changes.get((kind, change), 0)))
        yield from (info, held, changes)

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "cellect_replica_info",
                "This replica of the monitor (1): its id, host and version.",
                labels=("replica_id", "host", "version"),
            ),
            GaugeMetricFamily(
                "cellect_leases_held",
                "Leases this replica holds: buckets of sites it polls (poll), 1 for each "
                "singleton job it leads (portfolio, alerts).",
                labels=("kind",),
            ),
            CounterMetricFamily(
                "cellect_lease_changes",
                "Leases acquired, lost or released by this replica, by kind.",
                labels=("kind", "change"),
            ),
        )
