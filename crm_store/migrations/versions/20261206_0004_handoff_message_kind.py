"""Hand-off messages say what they are: an ordinary staff reply or the closing words of the case.

The chat used to recognise the closing message by comparing its text with the closing words; the
kind is now stored. Closing messages already in the store are marked by that same text, the one
every close queued until this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 10:12:41.507316+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The closing words every close queued before this revision (then a constant in api/relay.py).
_CLOSING_TEXT_BEFORE_0004 = "本次人工服务已结束，感谢您的耐心。方便为这次服务打个分吗？"


def upgrade() -> None:
    with op.batch_alter_table("handoff_messages") as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="reply", nullable=False))
    messages = sa.table("handoff_messages", sa.column("kind", sa.String), sa.column("text", sa.Text))
    op.execute(messages.update().where(messages.c.text == _CLOSING_TEXT_BEFORE_0004).values(kind="closing"))


def downgrade() -> None:
    with op.batch_alter_table("handoff_messages") as batch_op:
        batch_op.drop_column("kind")
