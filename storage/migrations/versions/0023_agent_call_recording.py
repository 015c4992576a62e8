"""Recordings of agents' calls (issue 20): a recording names the agent whose call with the caller it
holds (`agent_id`, with the caller's `call_sid`: their `AgentCall`), kept once however often the
platform reports it.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_recording_agent_id_console_user", "console_user", ["agent_id"], ["id"])
        batch_op.create_index("ix_recording_agent_id", ["agent_id"], unique=False)
        batch_op.create_index(
            "uq_recording_agent_call",
            ["platform", "recording_id"],
            unique=True,
            sqlite_where=sa.text("kind = 'agent_call'"),
            postgresql_where=sa.text("kind = 'agent_call'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_index("uq_recording_agent_call")
        batch_op.drop_index("ix_recording_agent_id")
        batch_op.drop_constraint("fk_recording_agent_id_console_user", type_="foreignkey")
        batch_op.drop_column("agent_id")
