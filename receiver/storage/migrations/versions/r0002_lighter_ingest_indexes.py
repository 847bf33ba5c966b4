"""Lighter webhook ingest: drop two indexes every delivery wrote and no query needed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:50:00

Each webhook delivery writes a row of `webhook_deliveries` and its entries into
`schedule_entries`; every index on them is another page written (and fsynced) per
delivery. `ix_webhook_deliveries_site_received` served no query, and
`ix_schedule_entries_site_end` only a site's horizon, which the unique
(site_id, start_at, end_at) index serves by its site prefix. Together they were about
40 % of the pages a batch of deliveries wrote.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_webhook_deliveries_site_received", table_name="webhook_deliveries")
    op.drop_index("ix_schedule_entries_site_end", table_name="schedule_entries")


def downgrade() -> None:
    op.create_index(
        "ix_schedule_entries_site_end", "schedule_entries", ["site_id", "end_at"], unique=False
    )
    op.create_index(
        "ix_webhook_deliveries_site_received",
        "webhook_deliveries",
        ["site_id", "received_at"],
        unique=False,
    )
