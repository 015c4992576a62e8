"""Callbacks worked to an end (issue 20): each try at ringing a caller back, its outcome and note;
who took the callback; at most one open missed-call callback per number.

A table of attempts rather than columns on callback_request: each try has its own agent, moment,
dial result and note, a click-to-call needs an id for the platform's URLs before its outcome is
known (as citizen_call has), and the list's "n of max" and "last outcome" are read from the rows
while the earlier tries stay on record. `unreachable` is a new value of callback_request.status
(a string column: no DDL).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_MISSED = "status = 'pending' AND reason = 'missed'"


def upgrade() -> None:
    with op.batch_alter_table("callback_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_callback_request_owner_id", "console_user", ["owner_id"], ["id"])
        batch_op.create_index("ix_callback_request_owner_id", ["owner_id"], unique=False)
        batch_op.create_index(
            "uq_callback_request_open_missed",
            ["phone"],
            unique=True,
            sqlite_where=sa.text(OPEN_MISSED),
            postgresql_where=sa.text(OPEN_MISSED),
        )
    op.create_table(
        "callback_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("callback_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dialled", sa.Boolean(), nullable=False),
        sa.Column("dial_status", sa.String(length=20), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "reached", "no_answer", "busy", "wrong_number", name="callbackoutcome", native_enum=False, length=20
            ),
            nullable=True,
        ),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["callback_id"], ["callback_request.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["console_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("callback_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_callback_attempt_callback_id", ["callback_id"], unique=False)
        batch_op.create_index("ix_callback_attempt_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("callback_attempt")
    with op.batch_alter_table("callback_request", schema=None) as batch_op:
        batch_op.drop_index("uq_callback_request_open_missed")
        batch_op.drop_index("ix_callback_request_owner_id")
        batch_op.drop_constraint("fk_callback_request_owner_id", type_="foreignkey")
        batch_op.drop_column("owner_id")
