"""SMS statuses keep delivery apart from handling: an inbound message whose handling failed was
`failed`, the word Twilio uses for an SMS of ours it could not send; it is `handling_failed` now.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SMS_LOG = sa.table("sms_log", sa.column("direction", sa.String), sa.column("status", sa.String))


def _rename(old: str, new: str) -> None:
    inbound = SMS_LOG.c.direction == "inbound"
    op.execute(SMS_LOG.update().where(inbound, SMS_LOG.c.status == old).values(status=new))


def upgrade() -> None:
    _rename("failed", "handling_failed")


def downgrade() -> None:
    _rename("handling_failed", "failed")
