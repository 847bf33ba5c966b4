"""Inhibition: site alerts are muted while ApiDown fires, and a little after.

While the Cellect API is down the monitor's polled data goes stale, not wrong: the
site alerts it causes (DataStale, …) would only bury the one alert that says what to
do. Those that began before ApiDown resolved stay muted one `group_interval` longer
(the next group flush, in Alertmanager's terms): they resolve only when the next polls
bring fresh data, and must not be told in that gap. ImplementationFailed is never
inhibited: a webhook from the box reports it, never stale data.
Silences are applied in the same verdict (`muter`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, select

from receiver.alerting.grouping import FIRING
from receiver.storage.alert_tables import AlertRecord, Silence
from receiver.storage.alerts import silence_matches

INHIBITING_RULE = "ApiDown"
# Reports the boxes send (by webhook), not judgements on polled data: never inhibited.
UNINHIBITED_RULES = frozenset({"ImplementationFailed"})


def match_labels(record: AlertRecord) -> dict[str, str]:
    """The labels silences match on: the alert's own, plus `rule` and `severity`."""
    return {**record.labels, "rule": record.rule, "severity": record.severity}


def inhibition(
    session: Session, now: datetime, group_interval: timedelta
) -> tuple[datetime | None, datetime | None]:
    """Site alerts that started before the first moment are inhibited (None: none are),
    until the second (None: while ApiDown fires, or none are).

    While ApiDown fires: all of them. Once it resolves, those that began before its
    end stay muted for one `group_interval` (the next group flush, in Alertmanager's
    terms): the ones the outage caused (DataStale, ...) resolve only when the next
    polls bring fresh data, and must not be told in that gap.
    """
    down = session.exec(select(AlertRecord).where(AlertRecord.rule == INHIBITING_RULE)).first()
    if down is None:
        return None, None
    if down.state == FIRING:
        return now, None
    ended = down.ends_at
    if ended is None or now >= ended + group_interval:
        return None, None
    return ended, ended + group_interval


def muter(
    silences: Sequence[Silence], inhibited_before: datetime | None
) -> Callable[[AlertRecord], bool]:
    """Whether an alert is muted now: inhibited, or matched by an active silence."""

    def muted(record: AlertRecord) -> bool:
        if (
            inhibited_before is not None
            and "site_id" in record.labels
            and record.rule not in UNINHIBITED_RULES
            and record.starts_at <= inhibited_before
        ):
            return True
        labels = match_labels(record)
        return any(silence_matches(s, labels) for s in silences)

    return muted
