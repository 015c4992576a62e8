"""The visit's time slot (issue 19): when the citizen booked the worker for, its bounds in UTC.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot_starts_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("slot_ends_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_service_request_slot_starts_at", ["slot_starts_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.drop_index("ix_service_request_slot_starts_at")
        batch_op.drop_column("slot_ends_at")
        batch_op.drop_column("slot_starts_at")
