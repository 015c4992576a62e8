"""Revision 0005 keeps an SMS's delivery apart from its handling: the inbound messages whose handling
failed, stored as `failed` before it, become `handling_failed`; an SMS of ours Twilio failed to send
stays `failed`. On SQLite and PostgreSQL, up and down."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import db
from storage.models import SmsDelivery, SmsHandling

ROWS = [  # sid, direction, status
    ("SM01", "inbound", "failed"),
    ("SM02", "outbound", "failed"),
    ("SM03", "inbound", "handled"),
    ("SM04", "outbound", "send_failed"),
    ("SM05", "inbound", "received"),
    ("SM06", "outbound", "delivered"),
]


def statuses(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT message_sid, status FROM sms_log")).all())


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: the migration's SQL is run on both dialects."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_inbound_failures_become_handling_failed_and_back(empty_database_url: str) -> None:
    engine = db.create_engine(empty_database_url)
    db.upgrade(engine, "0004")
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as connection:
        for sid, direction, status in ROWS:
            connection.execute(
                sa.text(
                    "INSERT INTO sms_log (message_sid, direction, body, status, created_at, updated_at) "
                    "VALUES (:sid, :direction, 'HAAN', :status, :at, :at)"
                ),
                {"sid": sid, "direction": direction, "status": status, "at": moment},
            )

    db.upgrade(engine)
    upgraded = statuses(engine)
    db.downgrade(engine, "0004")
    downgraded = statuses(engine)
    engine.dispose()

    assert upgraded == {
        "SM01": SmsHandling.FAILED,
        "SM02": SmsDelivery.FAILED,
        "SM03": "handled",
        "SM04": "send_failed",
        "SM05": "received",
        "SM06": "delivered",
    }
    assert upgraded["SM01"] == "handling_failed"
    assert downgraded == {sid: status for sid, _, status in ROWS}


def test_no_status_means_two_things() -> None:
    assert not {s.value for s in SmsDelivery} & {s.value for s in SmsHandling}
    assert max(len(s.value) for s in [*SmsDelivery, *SmsHandling]) <= 20  # the column's length
