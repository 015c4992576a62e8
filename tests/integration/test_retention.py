"""The nightly retention job (DPDP Act s.8(7)): a citizen last heard from more than a year ago is
erased from every table and from Redis, their number kept only as its keyed hash, so that when they
ring again they are the same (repeat) caller; a recent citizen's data stays as it was."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core import phones
from core.clock import FrozenClock
from core.settings import Settings
from dispatch import context, enqueue, jobs
from storage import callqueue
from storage.models import AuditEvent, Caller, CallLog, RequestStatus, ServiceRequest, SmsLog
from telephony.twilio.rest import TwilioTelephony
from tests.factories import ALWAYS_OPEN, call, engine_of, holds, redis_dump, run_jobs, sms_from, table_dump, with_hours

# Both databases: the erasure updates with a NOT EXISTS on its own table, and searches the audit
# events' JSON as text (a cast each dialect writes its own way).
pytestmark = pytest.mark.both_databases

LONG_GONE = "+919812345678"  # booked 400 days ago, not heard from since
STILL_OPEN = "+919811122233"  # booked 400 days ago, the request still open
RECENT = "+919876501234"  # booked today
ENGLISH_PLUMBER_AT_226001 = "2,1,1,226001#,1"
AGO = timedelta(days=400)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    """Call records kept two years: a citizen erased after one still has calls on record, under the hash."""
    settings = with_hours(helpline_settings, **ALWAYS_OPEN)
    retention = settings.privacy.retention.model_copy(update={"call_logs": 730})
    return settings.model_copy(update={"privacy": settings.privacy.model_copy(update={"retention": retention})})


def aged(engine: sa.Engine, number: str, by: timedelta) -> None:
    """Time passes for a citizen: every row of theirs moved `by` into the past."""
    with Session(engine) as session, session.begin():
        caller = session.exec(select(Caller).where(Caller.phone == number)).one()
        caller.created_at -= by
        caller.last_seen_at -= by
        for request in session.exec(select(ServiceRequest).where(ServiceRequest.caller_id == caller.id)):
            request.created_at -= by
            request.updated_at -= by
        for log in session.exec(select(CallLog).where(CallLog.from_number == number)):
            log.started_at -= by
        for sms in session.exec(
            select(SmsLog).where(sa.or_(col(SmsLog.to_number) == number, col(SmsLog.from_number) == number))
        ):
            sms.created_at -= by


def close_requests_of(engine: sa.Engine, number: str) -> None:
    with Session(engine) as session, session.begin():
        caller = session.exec(select(Caller).where(Caller.phone == number)).one()
        for request in session.exec(select(ServiceRequest).where(ServiceRequest.caller_id == caller.id)):
            request.status = RequestStatus.CLOSED


def book(app: Flask, number: str) -> None:
    call(app, ENGLISH_PLUMBER_AT_226001, from_number=number)
    run_jobs(app)


def test_a_citizen_past_retention_is_erased_everywhere_and_a_recent_one_kept(app: Flask) -> None:
    engine, connection = engine_of(app), app.extensions["sewamitra"].redis
    for number in (LONG_GONE, STILL_OPEN, RECENT):
        book(app, number)
    client = app.test_client()
    sms_from(client, LONG_GONE, "my name is Asha, 12 Hazratganj")
    run_jobs(app)
    close_requests_of(engine, LONG_GONE)
    aged(engine, LONG_GONE, AGO)
    aged(engine, STILL_OPEN, AGO)
    for number, sid in ((LONG_GONE, "1"), (RECENT, "2")):  # Redis's traces: a caller waiting, an SMS's job
        callqueue.note_waiting(connection, callqueue.Call(f"CA{sid * 32}", number, "en"), 1, 10, time.time())
        enqueue.receive_sms(connection, f"SM{sid * 32}", number, "hello")
    assert holds(table_dump(engine), LONG_GONE)
    assert holds(redis_dump(connection), LONG_GONE)
    with Session(engine) as session:
        gone_id = session.exec(select(Caller.id).where(Caller.phone == LONG_GONE)).one()
        recent_texts = sorted(session.exec(select(SmsLog.body).where(SmsLog.to_number == RECENT)).all())

    context.install(None)
    runtime = app.extensions["sewamitra"]
    context.install(
        context.JobContext(
            runtime.settings, engine, connection, TwilioTelephony(runtime.settings), FrozenClock(datetime.now(UTC))
        )
    )
    try:
        counts = jobs.erase_expired()
        tables, keys = table_dump(engine), redis_dump(connection)
        again = jobs.erase_expired()
    finally:
        context.install(None)

    assert not holds(tables, LONG_GONE), "the expired citizen's number is still in a table"
    assert not holds(keys, LONG_GONE), "the expired citizen's number is still in Redis"
    assert "Asha" not in tables
    assert "Hazratganj" not in tables
    assert holds(tables, RECENT)
    assert holds(tables, STILL_OPEN)
    assert holds(keys, RECENT)
    assert [w.phone for w in callqueue.waiting(connection, time.time())] == [RECENT]
    assert counts["numbers"] == 1
    assert counts["sms_bodies_blanked"] >= 2
    with Session(engine) as session:
        assert sorted(session.exec(select(SmsLog.body).where(SmsLog.to_number == RECENT)).all()) == recent_texts
        assert len(recent_texts) == 2
        assert all(recent_texts)
        [run, second] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "privacy.retention_run").order_by(col(AuditEvent.id))
        ).all()
        assert run.actor == "system"
        assert run.detail == counts
        assert all(isinstance(v, int) for v in run.detail.values())
    # Run twice: nothing more to erase, nothing changed but the second run's audit event.
    assert again == {name: 0 for name in counts}
    assert second.detail == again
    assert _without_audit(table_dump(engine)) == _without_audit(tables)

    # The citizen rings again a year later: the same caller, a repeat caller, known by the hash.
    call(app, ENGLISH_PLUMBER_AT_226001, from_number=LONG_GONE)
    key = app.extensions["sewamitra"].settings.privacy_key
    with Session(engine) as session:
        caller = session.exec(select(Caller).where(Caller.phone == LONG_GONE)).one()
        assert caller.id == gone_id
        requests = session.exec(select(ServiceRequest).where(ServiceRequest.caller_id == gone_id)).all()
        assert len(requests) == 2
        calls = session.exec(
            select(CallLog).where(col(CallLog.from_number).in_([LONG_GONE, phones.pseudonym(LONG_GONE, key)]))
        ).all()
        assert len(calls) == 2


def _without_audit(dump: str) -> str:
    return "\n".join(line for line in dump.splitlines() if not line.startswith("audit_event:"))
