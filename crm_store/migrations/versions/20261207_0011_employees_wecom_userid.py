"""employees.wecom_userid: the WeCom (企业微信) app for staff (issue 19).

An employee's WeCom member id, so that their messages to the company's WeCom app are theirs, with
their role and scope. Unique where set (a unique index: SQLite cannot add a unique constraint to an
existing table, and a batch copy of `employees` is forbidden by the foreign keys pointing at it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:30:00.000000+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("employees", sa.Column("wecom_userid", sa.String(length=64), nullable=True))
    op.create_index("uq_employees_wecom_userid", "employees", ["wecom_userid"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_employees_wecom_userid", table_name="employees")
    op.execute(sa.text("ALTER TABLE employees DROP COLUMN wecom_userid"))
