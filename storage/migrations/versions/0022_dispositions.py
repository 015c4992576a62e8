"""Wrap-up codes of agent calls and their quality reviews (issue 20).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agent_call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("disposition_note", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_agent_call_disposition", ["disposition"], unique=False)
    op.create_table(
        "call_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_call_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("max_points", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_call_id"], ["agent_call.id"]),
        sa.ForeignKeyConstraint(["reviewer_id"], ["console_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_call_id"),
    )
    with op.batch_alter_table("call_review", schema=None) as batch_op:
        batch_op.create_index("ix_call_review_reviewer_id", ["reviewer_id"], unique=False)
        batch_op.create_index("ix_call_review_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("call_review")
    with op.batch_alter_table("agent_call", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_call_disposition")
        batch_op.drop_column("disposed_at")
        batch_op.drop_column("disposition_note")
        batch_op.drop_column("disposition")
