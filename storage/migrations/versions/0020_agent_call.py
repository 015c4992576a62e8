"""An agent's calls (issue 20): the caller an agent talked to, from the bridge to the end of the leg.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["console_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid", "agent_id", name="uq_agent_call_caller_agent"),
    )
    with op.batch_alter_table("agent_call", schema=None) as batch_op:
        batch_op.create_index("ix_agent_call_call_sid", ["call_sid"], unique=False)
        batch_op.create_index("ix_agent_call_agent_id", ["agent_id"], unique=False)
        batch_op.create_index("ix_agent_call_answered_at", ["answered_at"], unique=False)


def downgrade() -> None:
    op.drop_table("agent_call")
