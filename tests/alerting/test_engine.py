"""The engine on a real database: grouping, timing, repeat, resolve, silences, inhibition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import Engine

from receiver.alerting.engine import AlertEngine
from receiver.alerting.model import Severity
from receiver.cellect.clock import Clock
from receiver.settings import Settings
from receiver.storage.alerts import create_silence
from tests.support.alerting import new_session, outbox, service_alert, site_alert

LOW7, LOW8 = site_alert("SoCLow", 7), site_alert("SoCLow", 8)


class Firing:
    """Records the engine's firing counts, as `Metrics` would export them."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], int] = {}

    def set_alerts_firing(self, firing: Mapping[tuple[str, str], int]) -> None:
        self.last = dict(firing)


def make(
    clock: Clock, settings: Settings, store: Engine, metrics: Firing | None = None
) -> AlertEngine:
    return AlertEngine(clock, settings, store, metrics, route=lambda severity: ["t1", "t2"])


def titles(store: Engine) -> list[str]:
    return [m.title for m in outbox(store)]


def test_group_wait_then_one_message_per_target_for_the_group(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """Alerts of one group that appear together wait group_wait and go out in one message."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7, LOW8])
    assert engine.flush() == 0
    clock.advance(29)
    assert engine.flush() == 0
    clock.advance(1)
    assert engine.flush() == 2
    [first, second] = outbox(store)
    assert first.title == "[FIRING:2] SoCLow (warning)"
    assert "Site 7" in first.body
    assert "Site 8" in first.body
    assert {first.tags[1], second.tags[1]} == {"target:t1", "target:t2"}


def test_unchanged_group_repeats_only_after_repeat_interval(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """An unchanged firing alert is not re-sent before repeat_interval (4 h), then it is."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7])
    clock.advance(30)
    engine.flush()
    for _ in range(3):
        clock.advance(3600)
        engine.evaluate([LOW7])
        assert engine.flush() == 0
    clock.advance(3600)
    assert engine.flush() == 2
    assert titles(store) == ["[FIRING:1] SoCLow (warning)"] * 4


def test_new_alert_in_a_told_group_waits_group_interval(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """A second alert joining a notified group is told group_interval after the last message."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7])
    clock.advance(30)
    engine.flush()
    clock.advance(60)
    engine.evaluate([LOW7, LOW8])
    clock.advance(60)
    assert engine.flush() == 0
    clock.advance(180)
    assert engine.flush() == 2
    assert outbox(store)[-1].title == "[FIRING:2] SoCLow (warning)"
    assert "NEW SoCLow: site Site 8" in outbox(store)[-1].body


def test_resolved_notice_goes_out_at_once_and_only_for_told_alerts(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """A told alert that resolves is announced at the next flush; one never told is not."""
    engine = make(clock, settings, store)
    engine.evaluate([LOW7])
    clock.advance(30)
    engine.flush()
    engine.evaluate([LOW8])  # 7 resolves, 8 fires
    assert engine.flush() == 2
    assert outbox(store)[-1].title == "[RESOLVED] SoCLow (warning)"
    assert outbox(store)[-1].tags[2] == "kind:resolved"
    clock.advance(10)
    engine.evaluate([])  # 8 resolves before group_wait: never told, no notice
    clock.advance(300)
    assert engine.flush() == 0
    assert len(outbox(store)) == 4


def test_groups_are_rule_and_severity(clock: Clock, settings: Settings, store: Engine) -> None:
    """Different rules or severities are separate messages."""
    engine = make(clock, settings, store)
    critical = site_alert("SiteUnavailable", 7, Severity.CRITICAL)
    warning = site_alert("SiteUnavailable", 8, Severity.WARNING)
    engine.evaluate([LOW7, critical, warning])
    clock.advance(30)
    assert engine.flush() == 6
    assert sorted(set(titles(store))) == [
        "[FIRING:1] SiteUnavailable (critical)",
        "[FIRING:1] SiteUnavailable (warning)",
        "[FIRING:1] SoCLow (warning)",
    ]


def test_silence_mutes_until_it_expires(clock: Clock, settings: Settings, store: Engine) -> None:
    """A silence on rule + site holds the alert back until it ends; other sites are told."""
    engine = make(clock, settings, store)
    with new_session(store) as session, session.begin():
        create_silence(
            session=session, matchers={"rule": "SoCLow", "site_id": "7"}, starts_at=clock.now(),
            ends_at=clock.now() + timedelta(hours=1), created_by="test", comment="maintenance",
        )  # fmt: skip
    engine.evaluate([LOW7, LOW8])
    clock.advance(30)
    engine.flush()
    assert "Site 7" not in outbox(store)[0].body
    clock.advance(3600)
    engine.evaluate([LOW7, LOW8])
    assert engine.flush() == 2
    assert "NEW SoCLow: site Site 7" in outbox(store)[-1].body


def test_api_down_inhibits_site_alerts(clock: Clock, settings: Settings, store: Engine) -> None:
    """While ApiDown fires site alerts are muted, and one group_interval after it resolves."""
    engine = make(clock, settings, store)
    engine.evaluate([service_alert("ApiDown"), LOW7])
    clock.advance(30)
    engine.flush()
    assert titles(store) == ["[FIRING:1] ApiDown (critical)"] * 2
    engine.evaluate([LOW7])
    clock.advance(1)
    engine.flush()
    assert titles(store)[2:] == ["[RESOLVED] ApiDown (critical)"] * 2
    clock.advance(298)  # ApiDown ended 299 s ago: the polls may not have caught up yet
    engine.flush()
    assert len(titles(store)) == 4
    clock.advance(1)
    engine.flush()
    assert titles(store)[4:] == ["[FIRING:1] SoCLow (warning)"] * 2


def test_state_survives_a_restart(clock: Clock, settings: Settings, store: Engine) -> None:
    """A new engine on the same database neither re-tells a told alert nor forgets a pending one."""
    first = make(clock, settings, store)
    first.evaluate([LOW7])
    clock.advance(30)
    first.flush()
    first.evaluate([LOW7, LOW8])
    second = make(clock, settings, store)
    second.evaluate([LOW7, LOW8])
    clock.advance(299)
    assert second.flush() == 0
    clock.advance(1)
    assert second.flush() == 2


def test_firing_counts_reach_the_metrics_callback(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """The engine reports how many alerts fire per rule and severity."""
    firing = Firing()
    engine = make(clock, settings, store, firing)
    engine.evaluate([LOW7, LOW8, service_alert("ApiDown")])
    assert firing.last == {("SoCLow", "warning"): 2, ("ApiDown", "critical"): 1}
    engine.evaluate([])
    assert firing.last == {}
