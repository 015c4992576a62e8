"""The spoken address (issue 18): after the PIN code is confirmed the caller says their house number,
street and a landmark after the beep. Whole calls placed by the simulator as Twilio and as Plivo
would, against the real app, database and Redis; the recordings live at the platform's sandbox.
Whatever comes of the recording, the booking is made; the worker the job is assigned to hears it."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.settings import Settings
from devtools.simulator import Played, Transcript
from devtools.twilio_sandbox import TwilioSandbox
from ivr.effects import CallContext, keep_recording
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AuditEvent, Recording, RequestStatus, ServiceRequest, Worker, utcnow
from telephony import call
from tests.factories import (
    ACCOUNT_SID,
    ALWAYS_OPEN,
    CITIZEN,
    ENGLISH_DIGITS,
    PLIVO_AUTH_ID,
    add_worker,
    engine_of,
    simulator,
    spoken_digits,
    with_hours,
)

BOOK_AT_226001 = "2,1,1,226001#,1,9"  # English, a new request, plumber, PIN 226001, that is right
RAMESH = "+919812345678"


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def ring(app: Flask, sandbox: TwilioSandbox, keys: str, *, from_number: str = CITIZEN) -> Transcript:
    """A call whose recordings the platform keeps at its sandbox."""
    account = PLIVO_AUTH_ID if sandbox.name == "Plivo" else ACCOUNT_SID
    call = simulator(app.test_client(), from_number=from_number, account_sid=account, media_url=sandbox.base_url)
    transcript = call.run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def booked(app: Flask) -> ServiceRequest:
    with Session(engine_of(app)) as session:
        (request,) = session.exec(select(ServiceRequest)).all()
        return request


def recordings(app: Flask) -> list[Recording]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(Recording).order_by(col(Recording.id))).all())


# -- the caller -------------------------------------------------------------------------------------


def test_the_caller_says_their_address_and_the_request_keeps_it(app: Flask, sandbox: TwilioSandbox) -> None:
    transcript = ring(app, sandbox, BOOK_AT_226001 + ",say:8#,2")
    heard = transcript.heard
    asked = next(i for i, line in enumerate(heard) if line.startswith("After the beep, please say your house number"))
    assert heard[asked + 1] == "Thank you, your address is recorded."
    assert heard[asked + 2].startswith("Thank you. Your request is registered.")
    assert Played("beep") in transcript.events
    request = booked(app)
    (recording,) = recordings(app)
    assert (recording.request_id, recording.duration_s, recording.platform) == (request.id, 8, sandbox.name.lower())
    assert recording.url.startswith(sandbox.base_url)
    assert recording.recording_id in recording.url


@pytest.mark.parametrize("skip", ["say:0#", "-"], ids=["presses-hash", "says-nothing"])
def test_a_caller_who_skips_the_address_is_booked_all_the_same(app: Flask, sandbox: TwilioSandbox, skip: str) -> None:
    transcript = ring(app, sandbox, f"{BOOK_AT_226001},{skip},2")
    assert not transcript.said("your address is recorded")
    assert transcript.said("Your request is registered")
    assert booked(app).status is RequestStatus.NEW
    assert recordings(app) == []


def test_a_recording_the_platform_lost_does_not_cost_the_booking(app: Flask, sandbox: TwilioSandbox) -> None:
    transcript = ring(app, sandbox, BOOK_AT_226001 + ",say:6!,2")
    assert not transcript.said("your address is recorded")
    assert transcript.said("Your request is registered")
    assert booked(app).number
    assert recordings(app) == []


def test_a_caller_who_hangs_up_while_speaking_is_still_booked_with_their_address(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    transcript = ring(app, sandbox, BOOK_AT_226001 + ",say:12")
    assert transcript.ended_by == "caller"
    (recording,) = recordings(app)
    assert recording.request_id == booked(app).id
    assert recording.duration_s == 12


@pytest.mark.both_databases
def test_the_turn_that_kept_a_recording_keeps_no_other_when_it_runs_again(
    app: Flask, app_settings: Settings, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    """The Record's turn run again (a platform's retry that finds no stored answer: the process that
    kept the recording died before it could store one) keeps the first recording and adds none."""
    ring(app, sandbox, BOOK_AT_226001 + ",say:8#,2")
    (kept,) = recordings(app)
    again = CallContext(app_settings, engine_of(app), redis_client, kept.call_sid, CITIZEN, kept.turn, "en")
    retried = call.Recording(recording_id="RE" + "9" * 32, url=f"{sandbox.base_url}/again", duration="8")

    assert keep_recording(again, retried).name == "recorded"
    assert [(r.id, r.recording_id, r.url) for r in recordings(app)] == [(kept.id, kept.recording_id, kept.url)]

    later = CallContext(app_settings, engine_of(app), redis_client, kept.call_sid, CITIZEN, kept.turn + 1, "en")
    assert keep_recording(later, retried).name == "recorded"  # another turn's recording is another one
    assert [r.recording_id for r in recordings(app)] == [kept.recording_id, retried.recording_id]


# -- the worker -------------------------------------------------------------------------------------


def english_worker(app: Flask, name: str, phone: str) -> int:
    worker_id = add_worker(engine_of(app), name, phone, 0.5)
    with session_scope(engine_of(app)) as session:
        session.execute(sa.update(Worker).where(col(Worker.id) == worker_id).values(language="en"))
    return worker_id


def assign(app: Flask, request_id: int, worker_id: int) -> None:
    """The job went to the worker (dispatch's work, tested in test_dispatch.py)."""
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(worker_id=worker_id, status=RequestStatus.ASSIGNED)
        )


def test_the_assigned_worker_hears_the_address_the_customer_spoke(app: Flask, sandbox: TwilioSandbox) -> None:
    ring(app, sandbox, BOOK_AT_226001 + ",say:8#,2")
    request, (recording,) = booked(app), recordings(app)
    ramesh = english_worker(app, "Ramesh Kumar", RAMESH)
    assign(app, request.id or 0, ramesh)
    transcript = ring(app, sandbox, "2,-", from_number=RAMESH)  # 2 at the job menu: the address
    assert transcript.said(f"Your job {spoken_digits(request.number, ENGLISH_DIGITS)}")
    assert transcript.said("The customer's address, as they said it:")
    assert Played(recording.url) in transcript.events
    assert CITIZEN not in transcript.render(requests=False)
    with Session(engine_of(app)) as session:
        (heard,) = session.exec(select(AuditEvent).where(AuditEvent.action == AuditAction.RECORDING_PLAYED)).all()
    assert (heard.actor, heard.entity_id) == (f"worker:{ramesh}", recording.id)


def test_a_job_without_a_spoken_address_tells_the_worker_to_ring_the_customer_through_the_helpline(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    ring(app, sandbox, BOOK_AT_226001 + ",-,2")
    request = booked(app)
    ramesh = english_worker(app, "Ramesh Kumar", RAMESH)
    assign(app, request.id or 0, ramesh)
    transcript = ring(app, sandbox, "2,-", from_number=RAMESH)
    assert transcript.said("No spoken address was recorded for this job. To ask the customer, press 1")
    assert not any(isinstance(event, Played) and event.url.startswith(sandbox.base_url) for event in transcript.events)


def test_another_worker_does_not_hear_it(app: Flask, sandbox: TwilioSandbox) -> None:
    ring(app, sandbox, BOOK_AT_226001 + ",say:8#,2")
    request, (recording,) = booked(app), recordings(app)
    assign(app, request.id or 0, english_worker(app, "Ramesh Kumar", RAMESH))
    suresh = "+919812345679"
    english_worker(app, "Suresh Yadav", suresh)
    transcript = ring(app, sandbox, "2,-", from_number=suresh)  # no job of his: 2 at his menu is "busy"
    assert not transcript.said("Your job")
    assert Played(recording.url) not in transcript.events


def test_a_job_done_is_no_longer_played_to_its_worker(app: Flask, sandbox: TwilioSandbox) -> None:
    ring(app, sandbox, BOOK_AT_226001 + ",say:8#,2")
    request, (recording,) = booked(app), recordings(app)
    assign(app, request.id or 0, english_worker(app, "Ramesh Kumar", RAMESH))
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request.id)
            .values(status=RequestStatus.COMPLETED, completed_at=utcnow())
        )
    transcript = ring(app, sandbox, "2,-", from_number=RAMESH)  # within the day after: still his to call
    assert transcript.said(f"Your job {spoken_digits(request.number, ENGLISH_DIGITS)}")
    assert transcript.said("The address of a job can be played only while the job is assigned to you.")
    assert Played(recording.url) not in transcript.events
