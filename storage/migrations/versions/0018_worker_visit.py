"""The worker's day (issue 19): on the way with an ETA, arrived, started with the citizen's start
code (and the wrong tries at it), flagged late when not started by the slot's end.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_the_way_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("eta_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("start_code", sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column("start_code_tries", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("late_flagged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.drop_column("late_flagged_at")
        batch_op.drop_column("start_code_tries")
        batch_op.drop_column("start_code")
        batch_op.drop_column("started_at")
        batch_op.drop_column("arrived_at")
        batch_op.drop_column("eta_minutes")
        batch_op.drop_column("on_the_way_at")
