"""Prometheus' `for` for the built-in engine: a condition fires only once it has held long enough.

`Pending.admit(alerts, now, firing)` remembers when each alert's condition was first seen
true, without a break, and lets through those whose catalogue hold (`for_s`) has passed
since. An alert already firing passes at once, so a restart (which forgets the pending
state) neither resolves nor delays what was firing; a condition that breaks off starts
its hold anew, as in Prometheus. Time is the engine's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from datetime import datetime

from receiver.alerting.catalogue import spec
from receiver.alerting.model import Alert


def catalogue_hold(rule: str) -> float:
    """The rule's hold in seconds, from the catalogue."""
    return spec(rule).for_s


class Pending:
    """When each held condition began; see the module docstring."""

    def __init__(self, hold_s: Callable[[str], float] = catalogue_hold) -> None:
        self._hold_s = hold_s
        self._since: dict[str, datetime] = {}

    def admit(self, alerts: Iterable[Alert], now: datetime, firing: Container[str]) -> list[Alert]:
        """The alerts that may fire at `now`: held long enough, or firing already."""
        seen: dict[str, datetime] = {}
        admitted = []
        for alert in alerts:
            fp = alert.fingerprint
            began = seen[fp] = self._since.get(fp, now)
            if fp in firing or (now - began).total_seconds() >= self._hold_s(alert.rule):
                admitted.append(alert)
        self._since = seen  # a condition not seen now breaks off: its hold starts anew
        return admitted
