"""The same Alembic migrations build the schema on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from core.numbers import new_request_number
from storage import db
from storage.models import Caller, Offer, OfferStatus, ServiceRequest, Worker

# Both databases: the same migrations build each dialect's schema (types, partial indexes, constraints).
pytestmark = pytest.mark.both_databases

TABLES = {
    "district",
    "provider",
    "worker",
    "worker_skill",
    "caller",
    "service_request",
    "offer",
    "call_log",
    "sms_log",
    "audit_event",
    "console_user",
    "callback_request",
    "api_token",
}


def test_upgrade_builds_every_table_at_the_newest_revision(engine: sa.Engine) -> None:
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    assert db.current_revision(engine) == db.head_revision()


def test_the_models_and_the_migrations_agree(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_downgrade_to_nothing_and_up_again(engine: sa.Engine) -> None:
    db.downgrade(engine, "base")
    assert not TABLES & set(sa.inspect(engine).get_table_names())
    db.upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) >= TABLES


def test_upgrade_twice_changes_nothing(engine: sa.Engine) -> None:
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'nested' / 'helpline.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def _request_with_worker(session) -> tuple[ServiceRequest, Worker, Worker]:
    caller = Caller(phone="+919876500001")
    first = Worker(
        name="Ramesh Kumar",
        phone="+919876500002",
        pincode="226001",
        district="LUCKNOW",
        latitude=26.85,
        longitude=80.94,
    )
    second = Worker(
        name="Sunita Devi", phone="+919876500003", pincode="226001", district="LUCKNOW", latitude=26.85, longitude=80.94
    )
    session.add_all([caller, first, second])
    session.flush()
    request = ServiceRequest(
        number=new_request_number(), service_code="plumber", pincode="226001", district="LUCKNOW", caller_id=caller.id
    )
    session.add(request)
    session.flush()
    return request, first, second


def test_only_one_offer_per_request_can_be_accepted(engine: sa.Engine) -> None:
    with db.session_scope(engine) as session:
        request, first, second = _request_with_worker(session)
        assert request.id is not None
        assert first.id is not None
        assert second.id is not None
        session.add(Offer(request_id=request.id, worker_id=first.id, status=OfferStatus.ACCEPTED))
        session.add(Offer(request_id=request.id, worker_id=second.id, status=OfferStatus.DECLINED))
    with pytest.raises(sa.exc.IntegrityError), db.session_scope(engine) as session:
        session.add(Offer(request_id=request.id, worker_id=second.id, status=OfferStatus.ACCEPTED))


def test_times_come_back_in_utc(engine: sa.Engine) -> None:
    with db.session_scope(engine) as session:
        request, _, _ = _request_with_worker(session)
    with db.session_scope(engine) as session:
        stored = session.get(ServiceRequest, request.id)
        assert stored is not None
        assert stored.created_at.tzinfo == UTC
        assert abs((datetime.now(UTC) - stored.created_at).total_seconds()) < 60
        assert stored.status == "new"
        assert stored.status.value == "new"


def test_a_foreign_key_to_nowhere_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), db.session_scope(engine) as session:
        session.add(Offer(request_id=424242, worker_id=434343))
