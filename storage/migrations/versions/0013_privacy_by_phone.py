"""A citizen files their own access or erasure request by a menu choice on the phone (issue 18): a
privacy request's `filed_by` is the agent who filed it, or empty when the caller did.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.alter_column("filed_by", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM privacy_request WHERE filed_by IS NULL")
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.alter_column("filed_by", existing_type=sa.Integer(), nullable=False)
