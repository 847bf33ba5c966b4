"""Delivered against planned: the energy of each schedule entry that has run.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-22 09:00:00

`entry_energy` has a row per entry (site, start, end, generation) once it has ended and
its measurements are in: its planned energy, the delivered energy estimated from the
power samples or the SoC change (`method`), how many samples. Unique per entry, so a
second computation (another replica, a restart) adds nothing. New and empty; the monitor
fills it for entries that ended in the past two days (docs/metrics.md); nothing is lost
by downgrading but this table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "entry_energy",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("planned_kwh", sa.Float(), nullable=False),
        sa.Column("delivered_kwh", sa.Float(), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "site_id", "start_at", "end_at", "generation", name="uq_entry_energy_entry"
        ),
    )
    op.create_index("ix_entry_energy_end_at", "entry_energy", ["end_at"])


def downgrade() -> None:
    op.drop_index("ix_entry_energy_end_at", table_name="entry_energy")
    op.drop_table("entry_energy")
