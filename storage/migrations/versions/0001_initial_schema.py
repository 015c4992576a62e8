"""Initial schema: the helpline's records (DESIGN.md, issue 3).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_event_entity", ["entity", "entity_id"], unique=False)

    op.create_table(
        "caller",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("phone"),
    )
    op.create_table(
        "district",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("district", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_district_state"), ["state"], unique=False)

    op.create_table(
        "provider",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("district", sa.String(length=80), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=160), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("provider", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_district"), ["district"], unique=False)

    op.create_table(
        "console_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=60), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum("agent", "supervisor", "admin", "provider", name="role", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("full_name", sa.String(length=120), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["provider.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "worker",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("voice_preferred", sa.Boolean(), nullable=False),
        sa.Column("pincode", sa.String(length=6), nullable=False),
        sa.Column("district", sa.String(length=80), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("service_radius_km", sa.Float(), nullable=True),
        sa.Column(
            "police_verification",
            sa.Enum("pending", "verified", "rejected", name="verificationstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("police_verified_on", sa.Date(), nullable=True),
        sa.Column("police_reference", sa.String(length=60), nullable=True),
        sa.Column("police_note", sa.String(length=500), nullable=True),
        sa.Column("certification", sa.String(length=60), nullable=True),
        sa.Column("certification_grade", sa.String(length=10), nullable=True),
        sa.Column("certifying_institution", sa.String(length=160), nullable=True),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "origin",
            sa.Enum("local", "returned_migrant", name="origin", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["provider.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("phone"),
    )
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_district"), ["district"], unique=False)
        batch_op.create_index(batch_op.f("ix_worker_pincode"), ["pincode"], unique=False)
        batch_op.create_index(batch_op.f("ix_worker_police_verification"), ["police_verification"], unique=False)
        batch_op.create_index(batch_op.f("ix_worker_provider_id"), ["provider_id"], unique=False)

    op.create_table(
        "service_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=8), nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=True),
        sa.Column("service_code", sa.String(length=32), nullable=False),
        sa.Column("pincode", sa.String(length=6), nullable=False),
        sa.Column("district", sa.String(length=80), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("address_note", sa.String(length=500), nullable=True),
        sa.Column("preferred_time", sa.String(length=80), nullable=True),
        sa.Column("caller_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("ivr", "agent", "sms", "api", "open311", name="channel", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "new",
                "offered",
                "assigned",
                "completed",
                "closed",
                "escalated",
                "cancelled",
                name="requeststatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("completion_code", sa.String(length=4), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["caller_id"],
            ["caller.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("number"),
    )
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_request_caller_id"), ["caller_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_request_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_request_district"), ["district"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_request_service_code"), ["service_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_request_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_request_worker_id"), ["worker_id"], unique=False)

    op.create_table(
        "worker_skill",
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("service_code", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["worker_id"], ["worker.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("worker_id", "service_code"),
    )
    with op.batch_alter_table("worker_skill", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_skill_service_code"), ["service_code"], unique=False)

    op.create_table(
        "call_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=40), nullable=False),
        sa.Column(
            "direction",
            sa.Enum("inbound", "outbound", name="direction", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("from_number", sa.String(length=40), nullable=True),
        sa.Column("to_number", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=5), nullable=True),
        sa.Column("path", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_request.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid"),
    )
    with op.batch_alter_table("call_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_log_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_log_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_log_worker_id"), ["worker_id"], unique=False)

    op.create_table(
        "offer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "accepted",
                "declined",
                "expired",
                "withdrawn",
                name="offerstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum("sms", "voice", "agent", name="offerchannel", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_request.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offer_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_worker_id"), ["worker_id"], unique=False)
        batch_op.create_index(
            "uq_offer_one_accepted",
            ["request_id"],
            unique=True,
            sqlite_where=sa.text("status = 'accepted'"),
            postgresql_where=sa.text("status = 'accepted'"),
        )

    op.create_table(
        "sms_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_sid", sa.String(length=40), nullable=True),
        sa.Column(
            "direction",
            sa.Enum("inbound", "outbound", name="direction", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("from_number", sa.String(length=40), nullable=True),
        sa.Column("to_number", sa.String(length=40), nullable=True),
        sa.Column("body", sa.String(length=1600), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("error_code", sa.String(length=10), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_request.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_sid"),
    )
    with op.batch_alter_table("sms_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_log_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sms_log_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sms_log_worker_id"), ["worker_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_log_worker_id"))
        batch_op.drop_index(batch_op.f("ix_sms_log_request_id"))
        batch_op.drop_index(batch_op.f("ix_sms_log_created_at"))

    op.drop_table("sms_log")
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_offer_one_accepted",
            sqlite_where=sa.text("status = 'accepted'"),
            postgresql_where=sa.text("status = 'accepted'"),
        )
        batch_op.drop_index(batch_op.f("ix_offer_worker_id"))
        batch_op.drop_index(batch_op.f("ix_offer_status"))
        batch_op.drop_index(batch_op.f("ix_offer_request_id"))
        batch_op.drop_index(batch_op.f("ix_offer_expires_at"))

    op.drop_table("offer")
    with op.batch_alter_table("call_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_log_worker_id"))
        batch_op.drop_index(batch_op.f("ix_call_log_started_at"))
        batch_op.drop_index(batch_op.f("ix_call_log_request_id"))

    op.drop_table("call_log")
    with op.batch_alter_table("worker_skill", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_skill_service_code"))

    op.drop_table("worker_skill")
    with op.batch_alter_table("service_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_request_worker_id"))
        batch_op.drop_index(batch_op.f("ix_service_request_status"))
        batch_op.drop_index(batch_op.f("ix_service_request_service_code"))
        batch_op.drop_index(batch_op.f("ix_service_request_district"))
        batch_op.drop_index(batch_op.f("ix_service_request_created_at"))
        batch_op.drop_index(batch_op.f("ix_service_request_caller_id"))

    op.drop_table("service_request")
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_provider_id"))
        batch_op.drop_index(batch_op.f("ix_worker_police_verification"))
        batch_op.drop_index(batch_op.f("ix_worker_pincode"))
        batch_op.drop_index(batch_op.f("ix_worker_district"))

    op.drop_table("worker")
    op.drop_table("console_user")
    with op.batch_alter_table("provider", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_district"))

    op.drop_table("provider")
    with op.batch_alter_table("district", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_district_state"))

    op.drop_table("district")
    op.drop_table("caller")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_entity")
        batch_op.drop_index(batch_op.f("ix_audit_event_at"))

    op.drop_table("audit_event")
