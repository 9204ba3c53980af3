"""An index on orders (customer_id, order_date) INCLUDE (status, amount) for the lapse rule.

`crm_store.lapse` reads each customer's distinct counted order days in date order (a window `lag`
for the gaps between purchases), with their count and spend. With this index PostgreSQL reads them
presorted by an index-only scan, instead of sorting 10 million orders or fetching every lapsed
customer's orders from the table (bench/care_scale.py). Including `amount` costs little: 473 MB
with `status` alone, 486 MB with both, at 10M orders. SQLite ignores INCLUDE and gets the plain
two-column index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 22:00:00.000000+08:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_orders_customer_id_order_date",
        "orders",
        ["customer_id", "order_date"],
        postgresql_include=["status", "amount"],
    )


def downgrade() -> None:
    op.drop_index("ix_orders_customer_id_order_date", table_name="orders")
