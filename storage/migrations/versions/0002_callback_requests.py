"""Callback requests: callers who asked an agent to ring them back (issue 4).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("caller_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("call_sid", sa.String(length=40), nullable=True),
        sa.Column(
            "status",
            sa.Enum("pending", "done", "cancelled", name="callbackstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["caller_id"],
            ["caller.id"],
        ),
        sa.ForeignKeyConstraint(
            ["handled_by"],
            ["console_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid"),
    )
    with op.batch_alter_table("callback_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_request_caller_id"), ["caller_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_callback_request_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_callback_request_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("callback_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_request_status"))
        batch_op.drop_index(batch_op.f("ix_callback_request_created_at"))
        batch_op.drop_index(batch_op.f("ix_callback_request_caller_id"))

    op.drop_table("callback_request")
