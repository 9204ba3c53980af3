"""wechat_links and wechat_seen_messages: the WeChat Official Account channel (issue 19).

`wechat_links` says which customer a follower (openid) is; `wechat_seen_messages` keeps the MsgIds
of the last day, so that WeChat's retries of a callback are answered once, whichever worker gets them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:00:00.000000+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wechat_links",
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_wechat_links_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("openid", name=op.f("pk_wechat_links")),
    )
    op.create_index(op.f("ix_wechat_links_customer_id"), "wechat_links", ["customer_id"])
    op.create_table(
        "wechat_seen_messages",
        sa.Column("msg_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("msg_key", name=op.f("pk_wechat_seen_messages")),
    )
    op.create_index(op.f("ix_wechat_seen_messages_received_at"), "wechat_seen_messages", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_wechat_seen_messages_received_at"), table_name="wechat_seen_messages")
    op.drop_table("wechat_seen_messages")
    op.drop_index(op.f("ix_wechat_links_customer_id"), table_name="wechat_links")
    op.drop_table("wechat_links")
