"""The spoken address (issue 18): a recording a caller made at the helpline, kept by the telephony
platform; the helpline keeps its id, URL and length, attached to the request the call booked.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recording",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=40), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["service_request.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recording") as batch:
        batch.create_index("ix_recording_call_sid", ["call_sid"])
        batch.create_index("ix_recording_request_id", ["request_id"])
        batch.create_index("ix_recording_created_at", ["created_at"])
        batch.create_index("ix_recording_erased_at", ["erased_at"])


def downgrade() -> None:
    op.drop_table("recording")
