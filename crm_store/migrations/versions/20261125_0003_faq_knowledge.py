"""FAQ knowledge base: unanswered questions, answer feedback, and the revision the index follows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 22:43:06.652257+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "knowledge_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_knowledge_state")),
    )
    # Seeded so that every FAQ write is a plain UPDATE of an existing row, never an insert race.
    op.execute("INSERT INTO knowledge_state (name, revision) VALUES ('faqs', 0)")

    op.create_table(
        "faq_unanswered",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("normalized_key", sa.String(length=500), nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("first_asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("resolved_faq_id", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resolved_faq_id"],
            ["faqs.faq_id"],
            name=op.f("fk_faq_unanswered_resolved_faq_id_faqs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_unanswered")),
        sa.UniqueConstraint("normalized_key", name=op.f("uq_faq_unanswered_normalized_key")),
    )
    op.create_index(op.f("ix_faq_unanswered_resolved_faq_id"), "faq_unanswered", ["resolved_faq_id"])
    op.create_index("ix_faq_unanswered_status_count", "faq_unanswered", ["status", "count"])

    op.create_table(
        "faq_feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("faq_id", sa.String(length=32), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("conversation_key", sa.String(length=32), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_feedback")),
    )
    op.create_index(
        "uq_faq_feedback_faq_id_conversation_key",
        "faq_feedback",
        ["faq_id", "conversation_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_faq_feedback_faq_id_conversation_key", table_name="faq_feedback")
    op.drop_table("faq_feedback")

    op.drop_index("ix_faq_unanswered_status_count", table_name="faq_unanswered")
    op.drop_index(op.f("ix_faq_unanswered_resolved_faq_id"), table_name="faq_unanswered")
    op.drop_table("faq_unanswered")

    op.drop_table("knowledge_state")
