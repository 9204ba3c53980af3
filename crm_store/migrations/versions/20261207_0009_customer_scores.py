"""customer_scores: each customer's RFM scores, value tier, lifecycle, CLV and churn risk.

A snapshot recomputed nightly and on demand (crm_store/analytics/customer_value.py), so that the
360 view and the manager questions grouped by 客户等级 read one row per customer instead of ranking
every customer per request.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:00:00.000000+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_scores",
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("computed_on", sa.Date(), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=True),
        sa.Column("frequency", sa.Integer(), server_default="0", nullable=False),
        sa.Column("monetary", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False),
        sa.Column("r_score", sa.Integer(), nullable=True),
        sa.Column("f_score", sa.Integer(), nullable=True),
        sa.Column("m_score", sa.Integer(), nullable=True),
        sa.Column("value_tier", sa.String(length=8), nullable=False),
        sa.Column("lifecycle", sa.String(length=8), nullable=False),
        sa.Column("clv", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False),
        sa.Column("churn_risk", sa.Double(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_customer_scores_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_scores")),
    )
    op.create_index(op.f("ix_customer_scores_value_tier"), "customer_scores", ["value_tier"])
    op.create_index(op.f("ix_customer_scores_lifecycle"), "customer_scores", ["lifecycle"])


def downgrade() -> None:
    op.drop_index(op.f("ix_customer_scores_lifecycle"), table_name="customer_scores")
    op.drop_index(op.f("ix_customer_scores_value_tier"), table_name="customer_scores")
    op.drop_table("customer_scores")
