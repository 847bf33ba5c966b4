"""Which per-site reads the emulated cloud served, and when: the ground truth of polling.

For each site and resource (`events`, `ExAnte…`, `ExPost…` — the symbol of a time-series
read) the emulator keeps the emulated moments of its last `KEEP` successful reads. A test
reads them through the control API (`GET /_emulator/requests`) to check that every site
was polled, how often and how evenly — whichever of several monitors polled it.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

KEEP = 256  # moments kept per site and resource (bounded memory at any fleet size)


class RequestLog:
    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._reads: dict[tuple[int, str], deque[datetime]] = {}

    def served(self, site_id: int, resource: str, at: datetime) -> None:
        reads = self._reads.get((site_id, resource))
        if reads is None:
            reads = self._reads[(site_id, resource)] = deque(maxlen=self._keep)
        reads.append(at)

    def view(self) -> dict[str, dict[str, list[datetime]]]:
        """`{resource: {site_id: [moments, oldest first]}}`."""
        out: dict[str, dict[str, list[datetime]]] = {}
        for (site_id, resource), reads in sorted(self._reads.items()):
            out.setdefault(resource, {})[str(site_id)] = list(reads)
        return out
