"""Why a call ended, as the platform says it (Plivo's hangup callback: HangupCause, such as
NORMAL_CLEARING, NO_ANSWER, USER_BUSY), kept on the call's log (issue 17).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hangup_cause", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_log", schema=None) as batch_op:
        batch_op.drop_column("hangup_cause")
