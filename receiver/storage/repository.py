"""The repository in one import: every keyword-only storage function, by family.

The functions live in `sites`, `events`, `schedules`, `webhooks`, `alerts`, `outbox`
and `retention`; this module only gathers them (`from receiver.storage import repository`).
"""

from __future__ import annotations

from receiver.storage.alerts import (
    active_silences,
    create_silence,
    expire_silence,
    get_or_create_secret,
    list_firing_alerts,
    mark_notified,
    silence_matches,
    upsert_alert,
)
from receiver.storage.deliveries import (
    BatchOutcome,
    IncomingDelivery,
    canonical_digest,
    deliveries_since,
    replay_deliveries,
    store_webhook_batch,
)
from receiver.storage.events import open_events, site_events, upsert_availability_events
from receiver.storage.outbox import (
    due_messages,
    enqueue_message,
    mark_failed,
    mark_sent,
    pending_count,
)
from receiver.storage.retention import prune
from receiver.storage.schedules import (
    entries_in_progress_near_start,
    entries_in_range,
    planned_horizon,
    planned_horizons,
    status_counts,
    status_history,
)
from receiver.storage.sites import (
    list_sites,
    mark_absent_sites,
    record_measurement,
    record_measurements,
    site_history,
    upsert_sites,
)

__all__ = [
    "BatchOutcome",
    "IncomingDelivery",
    "active_silences",
    "canonical_digest",
    "create_silence",
    "deliveries_since",
    "due_messages",
    "enqueue_message",
    "entries_in_progress_near_start",
    "entries_in_range",
    "expire_silence",
    "get_or_create_secret",
    "list_firing_alerts",
    "list_sites",
    "mark_absent_sites",
    "mark_failed",
    "mark_notified",
    "mark_sent",
    "open_events",
    "pending_count",
    "planned_horizon",
    "planned_horizons",
    "prune",
    "record_measurement",
    "record_measurements",
    "replay_deliveries",
    "silence_matches",
    "site_events",
    "site_history",
    "status_counts",
    "status_history",
    "store_webhook_batch",
    "upsert_alert",
    "upsert_availability_events",
    "upsert_sites",
]
