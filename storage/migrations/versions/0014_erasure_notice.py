"""A citizen is told by SMS before their number is erased for lapsed purpose (DPDP Rules 2025, issue
18): when the notice went, on the caller's row, so that the erasure waits for it and a later lapse
gets a notice of its own.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("caller", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erasure_notice_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("caller", schema=None) as batch_op:
        batch_op.drop_column("erasure_notice_at")
