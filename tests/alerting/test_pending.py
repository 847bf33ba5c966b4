"""The built-in engine's `for`: a condition fires only after its catalogue hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.alerting.model import Alert, Severity
from receiver.alerting.pending import Pending, catalogue_hold

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def alert(rule: str = "SoCLow", site_id: str = "7") -> Alert:
    labels = {"site_id": site_id, "site_name": "Alpha"}
    return Alert(rule, Severity.WARNING, labels, "summary", "description", NOW)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_a_condition_fires_once_it_has_held_for_its_rule_hold() -> None:
    """SoCLow holds 10 minutes: not at 9:59, at 10:00; ImplementationFailed at once."""
    pending = Pending()
    assert pending.admit([alert(), alert("ImplementationFailed")], at(0), ()) == [
        alert("ImplementationFailed")
    ]
    assert pending.admit([alert()], at(9.99), ()) == []
    assert pending.admit([alert()], at(10), ()) == [alert()]


def test_a_break_starts_the_hold_anew() -> None:
    """A condition that is not seen once must hold its whole `for` again."""
    pending = Pending()
    pending.admit([alert()], at(0), ())
    pending.admit([], at(5), ())
    assert pending.admit([alert()], at(11), ()) == []
    assert pending.admit([alert()], at(21), ()) == [alert()]


def test_an_alert_already_firing_passes_at_once() -> None:
    """After a restart (nothing pending) what fires keeps firing, without a new hold."""
    pending = Pending()
    firing = alert()
    assert pending.admit([firing], at(0), {firing.fingerprint}) == [firing]


def test_holds_are_per_alert_not_per_rule() -> None:
    """Two sites of one rule are held apart: the later one waits its own hold."""
    pending = Pending()
    pending.admit([alert(site_id="1")], at(0), ())
    admitted = pending.admit([alert(site_id="1"), alert(site_id="2")], at(10), ())
    assert admitted == [alert(site_id="1")]


def test_the_holds_come_from_the_catalogue() -> None:
    """The default holds are the catalogue's (those of the Prometheus rules' `for`)."""
    assert catalogue_hold("SoCLow") == 600
    assert catalogue_hold("ImplementationFailed") == 0
