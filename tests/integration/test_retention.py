"""The nightly retention job (DPDP Act s.8(7)): a citizen last heard from more than a year ago is
erased from every table and from Redis, their number kept only as its keyed hash, so that when they
ring again they are the same (repeat) caller; a recent citizen's data stays as it was. Before the
erasure the citizen is told by SMS, 48 hours ahead (DPDP Rules 2025), and the erasure waits for it.

The job's clock stands still; time passes for the citizens instead (`aged`: every moment of theirs,
the notice's too, moved into the past)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core import phones
from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, enqueue, jobs, sms_text
from storage import callqueue
from storage.models import AuditEvent, Caller, CallLog, RequestStatus, ServiceRequest, SmsLog
from telephony.twilio.rest import TwilioTelephony
from tests.factories import (
    ALWAYS_OPEN,
    call,
    engine_of,
    holds,
    redis_dump,
    run_context_jobs,
    run_jobs,
    sms_from,
    table_dump,
    with_hours,
)
from tests.unit.test_sms_no_phone_number import MOBILE

# Both databases: the erasure updates with a NOT EXISTS on its own table, and searches the audit
# events' JSON as text (a cast each dialect writes its own way).
pytestmark = pytest.mark.both_databases

LONG_GONE = "+919812345678"  # booked 400 days ago, not heard from since
STILL_OPEN = "+919811122233"  # booked 400 days ago, the request still open
RECENT = "+919876501234"  # booked today
ENGLISH_PLUMBER_AT_226001 = "2,1,1,226001#,1,9"
HINDI_PLUMBER_AT_226001 = "1,1,1,226001#,1,9"
AGO = timedelta(days=400)
NOTICE = timedelta(hours=48)  # privacy.erasure_notice_hours, as config.yaml ships
A_YEAR = timedelta(days=365)  # privacy.retention.citizens
LANDLINE = "+915222345678"  # a Lucknow landline: no SMS reaches it


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
        if caller.erasure_notice_at is not None:
            caller.erasure_notice_at -= by
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


def book(app: Flask, number: str, keys: str = ENGLISH_PLUMBER_AT_226001) -> None:
    call(app, keys, from_number=number)
    run_jobs(app)


def booked_and_done(app: Flask, number: str, keys: str = ENGLISH_PLUMBER_AT_226001) -> None:
    """A citizen booked a plumber; the request is closed: nothing keeps their number but its time."""
    book(app, number, keys)
    close_requests_of(engine_of(app), number)


class Nights:
    """The nightly job, as `sewamitra worker` runs it, its clock frozen at the first night: time
    passes for the citizens (`aged`), not for the job."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.clock: FrozenClock | None = None

    def run(self, settings: Settings | None = None) -> dict[str, int]:
        """One run of `erase_expired`, then what it queued (the notices' SMS) sent."""
        runtime = self.app.extensions["sewamitra"]
        self.clock = self.clock or FrozenClock(datetime.now(UTC))
        settings = settings or runtime.settings
        ctx = context.JobContext(settings, runtime.engine, runtime.redis, TwilioTelephony(settings), self.clock)
        context.install(ctx)
        try:
            counts = jobs.erase_expired()
            run_context_jobs(ctx)
            return counts
        finally:
            context.install(None)

    @property
    def now(self) -> datetime:
        assert self.clock is not None
        return self.clock.now()


@pytest.fixture
def nights(app: Flask) -> Iterator[Nights]:
    yield Nights(app)
    context.install(None)


def notices_to(engine: sa.Engine, number: str) -> list[SmsLog]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(SmsLog)
                .where(SmsLog.template == "erasure_notice", SmsLog.to_number == number)
                .order_by(col(SmsLog.id))
            ).all()
        )


def caller_of(engine: sa.Engine, number: str) -> Caller:
    with Session(engine) as session:
        return session.exec(select(Caller).where(Caller.phone == number)).one()


def texts_to(sandbox: TwilioSandbox, number: str) -> list[str]:
    return [m["body"] for m in sandbox.messages if m["to"] == number]


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
        told = jobs.erase_expired()  # the first night: told, not erased
        aged(engine, LONG_GONE, NOTICE)
        counts = jobs.erase_expired()
        tables, keys = table_dump(engine), redis_dump(connection)
        again = jobs.erase_expired()
    finally:
        context.install(None)

    assert (told["erasure_notices"], told["numbers"], told["numbers_awaiting_notice"]) == (1, 0, 1)
    assert not holds(tables, LONG_GONE), "the expired citizen's number is still in a table"
    assert not holds(keys, LONG_GONE), "the expired citizen's number is still in Redis"
    assert "Asha" not in tables
    assert "Hazratganj" not in tables
    assert holds(tables, RECENT)
    assert holds(tables, STILL_OPEN)
    assert holds(keys, RECENT)
    assert [w.phone for w in callqueue.waiting(connection, time.time())] == [RECENT]
    assert counts["numbers"] == 1
    assert counts["sms_bodies_blanked"] >= 3  # the notice's among them
    assert counts["erasure_notices"] == 0
    with Session(engine) as session:
        assert sorted(session.exec(select(SmsLog.body).where(SmsLog.to_number == RECENT)).all()) == recent_texts
        assert len(recent_texts) == 2
        assert all(recent_texts)
        [_, run, second] = session.exec(
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


# -- the notice before an erasure for lapsed purpose (DPDP Rules 2025) -----------------------------

HINDI, ENGLISH, LATER = "+919812300011", "+919812300022", "+919812300033"


def erased_on(nights: Nights, settings: Settings) -> str:
    """The day the notice names: 48 hours after it, in the helpline's own time zone."""
    return (nights.now + NOTICE).astimezone(ZoneInfo(settings.call_centre.timezone)).strftime("%d %b %Y")


def test_a_citizen_is_told_in_their_language_48_hours_before_their_number_is_erased(
    app: Flask, nights: Nights, sandbox: TwilioSandbox
) -> None:
    engine, settings = engine_of(app), app.extensions["sewamitra"].settings
    booked_and_done(app, HINDI, HINDI_PLUMBER_AT_226001)
    booked_and_done(app, ENGLISH)
    booked_and_done(app, LATER)
    aged(engine, HINDI, A_YEAR - timedelta(hours=24))  # erased in a day: inside the notice's 48 hours
    aged(engine, ENGLISH, A_YEAR - timedelta(hours=47))
    aged(engine, LATER, A_YEAR - timedelta(hours=73))  # beyond 48 hours and a night: told tomorrow night
    seen = {number: caller_of(engine, number).last_seen_at for number in (HINDI, ENGLISH)}

    first = nights.run()

    assert (first["erasure_notices"], first["numbers"]) == (2, 0)
    day = erased_on(nights, settings)
    [hindi] = notices_to(engine, HINDI)
    [english] = notices_to(engine, ENGLISH)
    assert hindi.body == sms_text.compose(settings, "erasure_notice", "hi", {"date": day})
    assert hindi.body.startswith("सेवामित्र:")
    assert english.body == (
        f"Sewamitra: the helpline no longer needs your number and details and will erase them on or after {day}. "
        f"To keep them, call {settings.helpline_public_number}."
    )
    for sms in (hindi, english):
        assert MOBILE.search(sms.body) is None, sms.body
    assert texts_to(sandbox, HINDI)[-1] == hindi.body  # sent, like every SMS
    assert texts_to(sandbox, ENGLISH)[-1] == english.body
    assert notices_to(engine, LATER) == []
    for number in (HINDI, ENGLISH):
        caller = caller_of(engine, number)
        assert caller.erasure_notice_at == nights.now
        assert caller.last_seen_at == seen[number], "the notice is no contact of theirs"

    assert nights.run()["erasure_notices"] == 0  # told once
    for number in (HINDI, ENGLISH, LATER):
        aged(engine, number, NOTICE - timedelta(minutes=1))
    short = nights.run()  # both past their year, the notice not yet 48 hours old

    assert (short["numbers"], short["numbers_awaiting_notice"]) == (0, 2)
    assert short["erasure_notices"] == 1  # the later one's turn
    assert holds(table_dump(engine), HINDI)
    assert holds(table_dump(engine), ENGLISH)
    for number in (HINDI, ENGLISH, LATER):
        aged(engine, number, timedelta(minutes=1))
    done = nights.run()

    assert done["numbers"] == 2
    tables = table_dump(engine)
    assert not holds(tables, HINDI)
    assert not holds(tables, ENGLISH)
    assert holds(tables, LATER)  # told a day later: erased a day later
    key = settings.privacy_key
    assert key is not None
    with Session(engine) as session:
        erased_notices = session.exec(
            select(SmsLog).where(
                SmsLog.template == "erasure_notice",
                col(SmsLog.to_number).in_([phones.pseudonym(HINDI, key), phones.pseudonym(ENGLISH, key)]),
            )
        ).all()
    assert sorted(sms.body for sms in erased_notices) == ["", ""]  # blanked and hashed like every other SMS


def test_a_number_is_erased_the_first_night_it_is_due_though_the_nightly_run_drifts(app: Flask, nights: Nights) -> None:
    booked_and_done(app, ENGLISH)
    aged(engine_of(app), ENGLISH, A_YEAR - timedelta(hours=70))  # due in 70 hours: within 48 and a night

    assert nights.run()["erasure_notices"] == 1  # told tonight, not tomorrow night
    early_night = timedelta(hours=24) - timedelta(seconds=10)  # each run ten seconds earlier than the last
    aged(engine_of(app), ENGLISH, early_night)
    assert nights.run()["numbers"] == 0  # due in 46 hours
    aged(engine_of(app), ENGLISH, early_night)
    assert nights.run()["numbers"] == 0  # due in 22 hours
    aged(engine_of(app), ENGLISH, early_night)
    due = nights.run()  # due two hours ago; the notice 72 hours old, less the drift

    assert (due["numbers"], due["numbers_awaiting_notice"]) == (1, 0)
    assert not holds(table_dump(engine_of(app)), ENGLISH)


def test_a_caller_who_rings_after_the_notice_is_kept_and_told_again_at_their_next_lapse(
    app: Flask, nights: Nights
) -> None:
    engine = engine_of(app)
    booked_and_done(app, ENGLISH)
    aged(engine, ENGLISH, A_YEAR - timedelta(hours=24))
    assert nights.run()["erasure_notices"] == 1
    aged(engine, ENGLISH, timedelta(hours=30))
    assert nights.run()["numbers_awaiting_notice"] == 1  # past its year, the notice 30 hours old

    call(app, "2", from_number=ENGLISH)  # the citizen rings: they still want the helpline
    run_jobs(app)  # the call's log written
    aged(engine, ENGLISH, timedelta(hours=18))
    kept = nights.run()

    assert (kept["numbers"], kept["numbers_awaiting_notice"], kept["erasure_notices"]) == (0, 0, 0)
    assert holds(table_dump(engine), ENGLISH)
    aged(engine, ENGLISH, A_YEAR - timedelta(hours=24 + 18))  # a year after that call, less a day
    again = nights.run()

    assert (again["erasure_notices"], again["numbers"]) == (1, 0)  # this lapse's own notice
    assert len(notices_to(engine, ENGLISH)) == 2
    assert caller_of(engine, ENGLISH).erasure_notice_at == nights.now
    aged(engine, ENGLISH, NOTICE)
    assert nights.run()["numbers"] == 1
    assert not holds(table_dump(engine), ENGLISH)


def test_a_landline_is_erased_on_time_without_a_notice(app: Flask, nights: Nights) -> None:
    engine = engine_of(app)
    booked_and_done(app, LANDLINE)
    aged(engine, LANDLINE, A_YEAR + timedelta(hours=1))

    counts = nights.run()

    assert (counts["numbers"], counts["erasure_notices"], counts["numbers_awaiting_notice"]) == (1, 0, 0)
    assert not holds(table_dump(engine), LANDLINE)
    with Session(engine) as session:
        assert session.exec(select(SmsLog).where(SmsLog.template == "erasure_notice")).all() == []


def test_with_the_notice_turned_off_a_number_is_erased_on_time_as_before(
    app: Flask, app_settings: Settings, nights: Nights
) -> None:
    engine = engine_of(app)
    booked_and_done(app, ENGLISH)
    aged(engine, ENGLISH, A_YEAR - timedelta(hours=24))
    off = app_settings.model_copy(
        update={"privacy": app_settings.privacy.model_copy(update={"erasure_notice_hours": 0})}
    )
    assert nights.run(off)["erasure_notices"] == 0
    aged(engine, ENGLISH, timedelta(hours=25))

    counts = nights.run(off)

    assert (counts["numbers"], counts["erasure_notices"], counts["numbers_awaiting_notice"]) == (1, 0, 0)
    assert not holds(table_dump(engine), ENGLISH)
    assert notices_to(engine, ENGLISH) == []
