"""The escalation workbench (issue 19): a round of offers an agent widened (its radius), and a
request handed to a provider agency that serves its district.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round_radius_km", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("handed_to_provider_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_service_request_handed_to_provider_id"), ["handed_to_provider_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_service_request_handed_to_provider_id_provider", "provider", ["handed_to_provider_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.drop_constraint("fk_service_request_handed_to_provider_id_provider", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_service_request_handed_to_provider_id"))
        batch_op.drop_column("handed_to_provider_id")
        batch_op.drop_column("round_radius_km")
