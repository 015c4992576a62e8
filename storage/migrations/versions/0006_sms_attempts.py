"""An SMS of ours is tried again from the database, not only from RQ's retries (lost when Redis
restarts empty): how many tries it has had, and when the next is due.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sms_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_sms_log_next_attempt_at"), ["next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_log_next_attempt_at"))
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
