"""The fleet feed: the changes each replica makes to the fleet picture, for the others.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15 09:00:00

A row per change (a batch of status changes, a site's new plan, a round of events, a
portfolio) with the writer's transaction id: on PostgreSQL `xid` defaults to
`pg_current_xact_id()`, so readers can take rows in commit order and never skip one
still in flight (receiver.coordination.feed). New and empty: nothing lost by downgrading.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    xid_default = sa.text("(pg_current_xact_id()::text::bigint)") if postgres else None
    now_default = sa.text("clock_timestamp()") if postgres else sa.text("CURRENT_TIMESTAMP")
    op.create_table(
        "fleet_feed",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("xid", sa.BigInteger(), server_default=xid_default, nullable=True),
        sa.Column("replica", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=now_default, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fleet_feed_xid_id", "fleet_feed", ["xid", "id"])
    op.create_index("ix_fleet_feed_at", "fleet_feed", ["at"])


def downgrade() -> None:
    op.drop_index("ix_fleet_feed_at", table_name="fleet_feed")
    op.drop_index("ix_fleet_feed_xid_id", table_name="fleet_feed")
    op.drop_table("fleet_feed")
