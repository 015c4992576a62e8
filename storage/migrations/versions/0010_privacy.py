"""Privacy (issue 18, DPDP Act 2023): a citizen's access or erasure request, filed by an agent, an
erasure approved by a supervisor; and the breach register, with whose data each breach touched.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("access", "erasure", name="privacyrequestkind", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum("pending", "done", "rejected", name="privacyrequeststatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("caller_id", sa.Integer(), nullable=False),
        sa.Column("filed_by", sa.Integer(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["caller_id"], ["caller.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["console_user.id"]),
        sa.ForeignKeyConstraint(["filed_by"], ["console_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_request_caller_id"), ["caller_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_privacy_request_status"), ["status"], unique=False)

    op.create_table(
        "breach",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("affected", sa.Integer(), nullable=False),
        sa.Column("notified", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["recorded_by"], ["console_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "breach_citizen",
        sa.Column("breach_id", sa.Integer(), nullable=False),
        sa.Column("caller_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["breach_id"], ["breach.id"]),
        sa.ForeignKeyConstraint(["caller_id"], ["caller.id"]),
        sa.PrimaryKeyConstraint("breach_id", "caller_id"),
    )
    with op.batch_alter_table("breach_citizen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_breach_citizen_caller_id"), ["caller_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("breach_citizen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_breach_citizen_caller_id"))
    op.drop_table("breach_citizen")
    op.drop_table("breach")
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_request_status"))
        batch_op.drop_index(batch_op.f("ix_privacy_request_caller_id"))
    op.drop_table("privacy_request")
