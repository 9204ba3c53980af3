"""Proactive care: retry, claim and read times on the outbox, channel health, the scheduler's lease.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:00:00.000000+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain ALTER TABLE on both engines, as in 0005: a batch migration would copy `outbox` into a new
# table, which is not needed for added nullable columns.

_OUTBOX_COLUMNS = ("next_attempt_at", "claimed_at", "read_at")


def upgrade() -> None:
    for column in _OUTBOX_COLUMNS:
        op.add_column("outbox", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "care_channels",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_care_channels")),
    )
    op.create_table(
        "care_locks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_care_locks")),
    )


def downgrade() -> None:
    op.drop_table("care_locks")
    op.drop_table("care_channels")
    for column in reversed(_OUTBOX_COLUMNS):
        op.execute(sa.text(f"ALTER TABLE outbox DROP COLUMN {column}"))
