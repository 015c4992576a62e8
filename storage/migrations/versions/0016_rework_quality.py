"""The job from booking to closure (issue 19): a rework visit linked to the job it redoes (and the
worker it must avoid, when the citizen asks for another), and the worker's quality record: the
agency's review list, a suspension, the police verification reminder sent.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rework_of_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("avoid_worker_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_service_request_rework_of_id", ["rework_of_id"])
        batch_op.create_foreign_key(
            "fk_service_request_rework_of_id_service_request", "service_request", ["rework_of_id"], ["id"]
        )
        batch_op.create_foreign_key("fk_service_request_avoid_worker_id_worker", "worker", ["avoid_worker_id"], ["id"])
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("review_flagged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("review_cleared_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suspension_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("police_reminder_for", sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f("ix_worker_suspended_at"), ["suspended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_suspended_at"))
        for column in (
            "police_reminder_for",
            "suspension_reason",
            "suspended_at",
            "review_cleared_at",
            "review_flagged_at",
            "review_reason",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.drop_constraint("fk_service_request_avoid_worker_id_worker", type_="foreignkey")
        batch_op.drop_constraint("fk_service_request_rework_of_id_service_request", type_="foreignkey")
        batch_op.drop_constraint("uq_service_request_rework_of_id", type_="unique")
        batch_op.drop_column("avoid_worker_id")
        batch_op.drop_column("rework_of_id")
