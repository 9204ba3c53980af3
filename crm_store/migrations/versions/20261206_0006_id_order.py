"""Indexes on (length(id), id) of the tables whose readable ids are allocated by number.

`crm_store.ids.next_numeric_id` reads the longest, then the greatest id of a prefix; without these
indexes it sorted every id (3.4 s per new interaction at 3 million rows, bench/staff_scale.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 18:00:00.000000+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tickets", "ticket_id"),
    ("interactions", "interaction_id"),
    ("opportunities", "opportunity_id"),
    ("faqs", "faq_id"),
)


def upgrade() -> None:
    for table, column in _ID_COLUMNS:
        op.create_index(f"ix_{table}_id_order", table, [sa.func.length(sa.column(column)), sa.column(column)])


def downgrade() -> None:
    for table, _ in _ID_COLUMNS:
        op.drop_index(f"ix_{table}_id_order", table_name=table)
