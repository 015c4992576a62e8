"""Revision 0017 brings in the escalation ladder: the requests open at the upgrade start their first
rung from the upgrade (not from when they were filed, or the first sweep would text every officer
about every old request at once); a request done before keeps no moment. Read back through the
models, as aware UTC moments, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage import db
from storage.models import ServiceRequest

FILED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_requests_open_at_the_upgrade_start_their_first_rung_then(empty_database_url: str) -> None:
    engine = db.create_engine(empty_database_url)
    db.upgrade(engine, "0016")
    with engine.begin() as connection:
        for number, status in (("1000001", "escalated"), ("1000002", "assigned"), ("1000003", "completed")):
            connection.execute(
                sa.text(
                    "INSERT INTO service_request (number, service_code, pincode, district, language, channel, "
                    "status, created_at, updated_at) VALUES (:number, 'plumber', '226001', 'LUCKNOW', 'hi', 'ivr', "
                    ":status, :at, :at)"
                ),
                {"number": number, "status": status, "at": FILED},
            )
    before = datetime.now(UTC) - timedelta(minutes=5)
    db.upgrade(engine)
    with Session(engine) as session:
        found = session.exec(select(ServiceRequest).order_by(col(ServiceRequest.number))).all()
    engine.dispose()

    assert [r.escalation_level for r in found] == [1, 1, 1]
    escalated, assigned, completed = (r.escalation_level_at for r in found)
    assert escalated is not None
    assert escalated > before
    assert assigned is not None
    assert assigned > before
    assert escalated.tzinfo is not None
    assert completed is None
