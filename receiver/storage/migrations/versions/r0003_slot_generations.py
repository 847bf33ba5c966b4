"""Schedule entries become generations of a slot: a re-planned slot keeps every entry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00

Until now one row stood for a slot (site, start, end) and its status only moved
forward, so after a 5 Overwritten the new entry of the same slot (1 → 2 or 3) was
dropped as "backwards" and its failures never counted. Now a row is one entry, one
*generation* of its slot (receiver.storage.status.rule): `generation` numbers them
(the existing rows become generation 0), `statuses_seen` has a bit (1 << s) for every
status s the entry reported, filled from the status history kept so far, and
`statuses_unconfirmed` the statuses only a poll has reported (0 for the existing rows:
their webhooks are taken to have arrived). The unique slot index gains `generation`.

Reports the old rule dropped are still in `webhook_deliveries`: `cellect-monitor
webhooks replay --since T` applies them now, each once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every status an entry moved through has a history row; distinct bits summed are OR-ed.
_FILL_SEEN = (
    "UPDATE schedule_entries SET statuses_seen = (1 << status) | COALESCE(("
    "SELECT SUM(DISTINCT 1 << h.status) FROM schedule_status_changes h"
    " WHERE h.entry_id = schedule_entries.id), 0)"
)


def upgrade() -> None:
    with op.batch_alter_table("schedule_entries") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("statuses_seen", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("statuses_unconfirmed", sa.Integer(), nullable=False, server_default="0")
        )
        batch.drop_constraint("uq_schedule_entries_site_span", type_="unique")
        batch.create_unique_constraint(
            "uq_schedule_entries_slot_generation",
            ["site_id", "start_at", "end_at", "generation"],
        )
    op.execute(_FILL_SEEN)


def downgrade() -> None:
    # Only the newest generation of each slot fits the old one-row-per-slot shape.
    op.execute(
        "DELETE FROM schedule_entries WHERE EXISTS (SELECT 1 FROM schedule_entries n"
        " WHERE n.site_id = schedule_entries.site_id AND n.start_at = schedule_entries.start_at"
        " AND n.end_at = schedule_entries.end_at AND n.generation > schedule_entries.generation)"
    )
    with op.batch_alter_table("schedule_entries") as batch:
        batch.drop_constraint("uq_schedule_entries_slot_generation", type_="unique")
        batch.create_unique_constraint(
            "uq_schedule_entries_site_span", ["site_id", "start_at", "end_at"]
        )
        batch.drop_column("statuses_unconfirmed")
        batch.drop_column("statuses_seen")
        batch.drop_column("generation")
