"""The console: callbacks scheduled for a time and about a request, and dispatch rounds an agent
restarts, and how long callers waited for an agent and sessions a sign-out ends (issue 6).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("callback_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_callback_request_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_callback_request_request_id"), ["request_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_callback_request_request_id_service_request", "service_request", ["request_id"], ["id"]
        )
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round_started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("dispatch_round", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_service_request_assigned_at"), ["assigned_at"], unique=False)
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatch_round", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("call_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_result", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("queue_wait_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.drop_column("dispatch_round")
    with op.batch_alter_table("call_log", schema=None) as batch_op:
        batch_op.drop_column("queue_wait_s")
        batch_op.drop_column("queue_result")
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.drop_column("dispatch_round")
        batch_op.drop_index(batch_op.f("ix_service_request_assigned_at"))
        batch_op.drop_column("round_started_at")
    with op.batch_alter_table("callback_request", schema=None) as batch_op:
        batch_op.drop_constraint("fk_callback_request_request_id_service_request", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_callback_request_request_id"))
        batch_op.drop_index(batch_op.f("ix_callback_request_due_at"))
        batch_op.drop_column("request_id")
        batch_op.drop_column("due_at")
