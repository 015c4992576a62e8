"""The escalation ladder (issue 19): a request's level and when it reached it; district and state
officers, a district officer's districts; an officer's recorded call to the citizen before closing
an escalated request, its recording kept with the spoken addresses (told apart by `kind`).

The requests open when the ladder comes in start their first rung's deadlines from the upgrade, not
from when they were filed: otherwise the first sweep would text every officer about every old
request at once.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_level", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("escalation_level_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_service_request_escalation_level", ["escalation_level"], unique=False)
    op.execute(
        sa.text(
            "UPDATE service_request SET escalation_level_at = CURRENT_TIMESTAMP "
            "WHERE status IN ('new', 'offered', 'assigned', 'escalated')"
        )
    )
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=20), server_default="address", nullable=False))
    op.create_table(
        "user_district",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("district", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["console_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "district"),
    )
    op.create_index("ix_user_district_district", "user_district", ["district"], unique=False)
    op.create_table(
        "citizen_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"]),
        sa.ForeignKeyConstraint(["request_id"], ["service_request.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["console_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_citizen_call_request_id", "citizen_call", ["request_id"], unique=False)
    op.create_index("ix_citizen_call_user_id", "citizen_call", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_citizen_call_user_id", table_name="citizen_call")
    op.drop_index("ix_citizen_call_request_id", table_name="citizen_call")
    op.drop_table("citizen_call")
    op.drop_index("ix_user_district_district", table_name="user_district")
    op.drop_table("user_district")
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.drop_index("ix_service_request_escalation_level")
        batch_op.drop_column("escalation_level_at")
        batch_op.drop_column("escalation_level")
