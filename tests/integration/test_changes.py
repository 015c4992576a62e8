"""A citizen changes their request after booking it: whole calls on Twilio and on Plivo (devtools'
simulators) to the "change or cancel" menu after tracking, and texts to the SMS webhook, against the
real app, database, Redis and the platform's sandbox, by a frozen clock (09:00 in Lucknow). Cancelled
with a reason while a worker is asked: the offer is withdrawn and the worker told; an assigned job
moved: its worker keeps it, is told the new time, and may give it back with "2 NUMBER"; a change too
close to the visit goes to an agent; CANCEL by SMS from the citizen, and refused from a stranger."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core import slots
from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, enqueue
from dispatch.queues import worker as rq_worker
from sewamitra.app import create_app
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CallbackRequest,
    Caller,
    Offer,
    OfferStatus,
    RequestStatus,
    ServiceRequest,
)
from telephony import telephony
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    add_request,
    add_worker,
    engine_of,
    in_the_agent_queue,
    request_of,
    simulator,
    sms_from,
    with_hours,
)

pytestmark = [pytest.mark.both_databases, pytest.mark.both_platforms]

NOW = datetime(2030, 1, 1, 3, 30, tzinfo=UTC)  # 09:00 in Lucknow: today's afternoon is the first open slot
WORKER = "+919800000801"
STRANGER = "+919800000899"
TOMORROW_EVENING = (datetime(2030, 1, 2, 10, 30, tzinfo=UTC), datetime(2030, 1, 2, 14, 30, tzinfo=UTC))
TODAY_AFTERNOON = (datetime(2030, 1, 1, 6, 30, tzinfo=UTC), datetime(2030, 1, 1, 10, 30, tzinfo=UTC))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def run_jobs(app: Flask) -> None:
    """What the RQ workers do next, by the app's frozen clock."""
    runtime = app.extensions["sewamitra"]
    installed = context.JobContext(
        runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings), runtime.clock
    )
    context.install(installed)
    try:
        rq_worker(runtime.redis).work(burst=True)
    finally:
        context.install(None)


def a_request(app: Flask, slot: tuple[datetime, datetime] | None = None) -> int:
    """A plumber's visit at 226001 booked by CITIZEN, who speaks English, for `slot` (or as soon as possible)."""
    engine = engine_of(app)
    request_id = add_request(engine, created=NOW - timedelta(minutes=10))
    with session_scope(engine) as session:
        session.execute(sa.update(Caller).where(col(Caller.phone) == CITIZEN).values(language="en"))
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(language="en", slot_starts_at=slot[0] if slot else None, slot_ends_at=slot[1] if slot else None)
        )
    return request_id


def offered(app: Flask, slot: tuple[datetime, datetime] | None = None) -> int:
    """A request offered to the worker by dispatch, who got the offer's SMS."""
    add_worker(engine_of(app), "Ramesh Kumar", WORKER, 0.5)
    request_id = a_request(app, slot)
    enqueue.dispatch_request(app.extensions["sewamitra"].redis, request_id)
    run_jobs(app)
    assert request_of(engine_of(app), request_id).status is RequestStatus.OFFERED
    return request_id


def assigned(app: Flask, slot: tuple[datetime, datetime]) -> int:
    """A request the worker took by texting 1, both sides told."""
    request_id = offered(app, slot)
    sms_from(app.test_client(), WORKER, "1")
    run_jobs(app)
    assert request_of(engine_of(app), request_id).status is RequestStatus.ASSIGNED
    return request_id


def texts_to(sandbox: TwilioSandbox, phone: str) -> list[str]:
    return [m["body"] for m in sandbox.messages if m["to"].lstrip("+") == phone.lstrip("+")]


def events(app: Flask, request_id: int, action: AuditAction) -> list[AuditEvent]:
    with Session(engine_of(app)) as session:
        query = select(AuditEvent).where(
            AuditEvent.entity == "service_request", AuditEvent.entity_id == request_id, AuditEvent.action == action
        )
        return list(session.exec(query.order_by(col(AuditEvent.id))).all())


def offers_of(app: Flask, request_id: int) -> list[Offer]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id))).all())


def rings(app: Flask, keys: str, phone: str = CITIZEN) -> Any:
    transcript = simulator(app.test_client(), from_number=phone).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


# -- on the phone -------------------------------------------------------------------------------------


def test_a_caller_cancels_with_a_reason_while_a_worker_is_asked_and_the_worker_is_told(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    request_id = offered(app)
    number = request_of(engine_of(app), request_id).number
    sandbox.clear()

    # main menu 2: their request's status; 4: change or cancel; 1: cancel; 2: "fixed it myself"
    transcript = rings(app, "2,4,1,2")

    assert transcript.said("To change the time of your request, or cancel it, press 4.")
    assert transcript.said("To cancel it, press 1. To change the visit time, press 2.")
    assert transcript.said("If fixed it myself, press 2.")
    assert transcript.said("is cancelled. Thank you for telling us.")
    assert request_of(engine_of(app), request_id).status is RequestStatus.CANCELLED
    [offer] = offers_of(app, request_id)
    assert offer.status is OfferStatus.WITHDRAWN
    [cancelled] = events(app, request_id, AuditAction.REQUEST_CANCELLED)
    assert cancelled.reason == "fixed it myself"
    assert cancelled.detail == {"reason_key": "fixed_myself", "reason_hi": "ख़ुद ठीक कर लिया", "via": "ivr"}
    assert cancelled.actor.startswith("caller:")
    [withdrawn] = events(app, request_id, AuditAction.OFFER_WITHDRAWN)
    assert withdrawn.reason == "the request was cancelled"

    run_jobs(app)
    [told] = texts_to(sandbox, WORKER)  # the worker reads Hindi
    assert told == f"सेवामित्र: काम {number} रद्द हो गया है। कृपया वहाँ न जाएँ। धन्यवाद।"


def test_a_hindi_caller_hears_the_change_menu_and_the_reasons_in_hindi(app: Flask) -> None:
    request_id = a_request(app)
    with session_scope(engine_of(app)) as session:
        session.execute(sa.update(Caller).where(col(Caller.phone) == CITIZEN).values(language="hi"))

    transcript = rings(app, "2,4,1,1")

    assert transcript.said("अनुरोध का समय बदलने या उसे रद्द करने के लिए 4 दबाएँ।")
    assert transcript.said("रद्द करने के लिए 1 दबाएँ। कारीगर के आने का समय बदलने के लिए 2 दबाएँ।")
    assert transcript.said("अब ज़रूरत नहीं, तो 1 दबाएँ।")
    assert transcript.said("रद्द हो गया है। बताने के लिए धन्यवाद।")
    [event] = events(app, request_id, AuditAction.REQUEST_CANCELLED)
    assert event.detail["reason_key"] == "not_needed"


def test_a_caller_moves_an_assigned_job_and_the_worker_keeps_it_and_is_told(app: Flask, sandbox: TwilioSandbox) -> None:
    request_id = assigned(app, TOMORROW_EVENING)
    job = request_of(engine_of(app), request_id)
    sandbox.clear()

    # your worker's menu: 2 for the main menu; 2: status; 4: change; 2: the time; 1: today afternoon
    transcript = rings(app, "2,2,4,2,1")

    assert transcript.said("When should the worker come?")
    assert transcript.said("For today afternoon, 12:00 to 16:00, press 1.")
    assert transcript.said("is now booked for today afternoon (12:00-16:00).")
    moved = request_of(engine_of(app), request_id)
    assert (moved.status, moved.worker_id) == (RequestStatus.ASSIGNED, job.worker_id)
    assert (moved.slot_starts_at, moved.slot_ends_at) == TODAY_AFTERNOON
    [event] = events(app, request_id, AuditAction.REQUEST_RESCHEDULED)
    assert event.reason == "2030-01-02/evening → 2030-01-01/afternoon"
    assert event.detail["worker_id"] == job.worker_id

    run_jobs(app)
    [told] = texts_to(sandbox, WORKER)
    assert told == f"सेवामित्र: काम {job.number} का समय अब आज दोपहर (12:00-16:00) है। तब न जा सकें तो 2 {job.number} भेजें।"

    # They had set out (the citizen got a start code) before they saw they cannot come then: the job
    # goes back to dispatch with none of this visit's steps or codes, and they are not asked again.
    sms_from(app.test_client(), WORKER, f"OMW {job.number} 20")
    run_jobs(app)
    assert request_of(engine_of(app), request_id).start_code is not None
    sandbox.clear()
    sms_from(app.test_client(), WORKER, f"2 {job.number}")
    run_jobs(app)
    again = request_of(engine_of(app), request_id)
    assert again.worker_id is None
    assert (again.start_code, again.on_the_way_at, again.completion_code) == (None, None, None)
    assert again.status is RequestStatus.ESCALATED  # nobody else near: an agent takes it from here
    [first] = offers_of(app, request_id)
    assert first.status is OfferStatus.DECLINED
    [released] = events(app, request_id, AuditAction.REQUEST_RELEASED)
    assert (released.from_status, released.to_status) == ("assigned", "new")
    assert texts_to(sandbox, WORKER) == [f"सेवामित्र: काम {job.number} के लिए मना दर्ज हुआ। धन्यवाद।"]


def test_a_change_too_close_to_the_visit_puts_the_caller_through_to_an_agent(app: Flask) -> None:
    request_id = assigned(app, TODAY_AFTERNOON)  # three hours away: under changes.free_until_hours

    transcript = rings(app, "2,2,4")

    assert transcript.said("An agent must make this change for you.")
    assert in_the_agent_queue(transcript)
    assert request_of(engine_of(app), request_id).status is RequestStatus.ASSIGNED
    assert events(app, request_id, AuditAction.REQUEST_CANCELLED) == []


def test_out_of_hours_a_change_too_close_to_the_visit_leaves_a_callback_about_the_request(
    helpline_settings: Settings, clock: FrozenClock
) -> None:
    app = create_app(with_hours(helpline_settings, opens=time(10), closes=time(10, 1)), clock)
    try:
        request_id = assigned(app, TODAY_AFTERNOON)
        transcript = rings(app, "2,2,4")
        assert transcript.said("Thank you. An agent will call you back soon.")
        with Session(engine_of(app)) as session:
            [callback] = session.exec(select(CallbackRequest)).all()
        assert (callback.request_id, callback.reason, callback.phone) == (request_id, "change_asked", CITIZEN)
    finally:
        app.extensions["sewamitra"].engine.dispose()


def test_a_request_booked_as_soon_as_possible_is_given_a_slot(app: Flask) -> None:
    request_id = a_request(app)

    transcript = rings(app, "2,4,2,2")

    assert transcript.said("is now booked for today evening (16:00-20:00).")
    moved = request_of(engine_of(app), request_id)
    [event] = events(app, request_id, AuditAction.REQUEST_RESCHEDULED)
    assert event.reason == "asap → 2030-01-01/evening"
    assert moved.slot_starts_at == slots.upcoming(app.extensions["sewamitra"].settings, NOW)[1].starts_at


def test_as_soon_as_possible_at_the_slot_menu_keeps_a_booked_visit_as_it_was(app: Flask) -> None:
    request_id = assigned(app, TOMORROW_EVENING)

    # your worker's menu: 2 for the main menu; 2: status; 4: change; 2: the time; 9: as soon as possible
    transcript = rings(app, "2,2,4,2,9")

    assert transcript.said("The visit time stays as it was.")
    kept = request_of(engine_of(app), request_id)
    assert (kept.slot_starts_at, kept.slot_ends_at) == TOMORROW_EVENING
    assert events(app, request_id, AuditAction.REQUEST_RESCHEDULED) == []


# -- by SMS ---------------------------------------------------------------------------------------------


def test_the_citizen_cancels_by_sms_and_the_worker_asked_is_told(app: Flask, sandbox: TwilioSandbox) -> None:
    request_id = offered(app, TOMORROW_EVENING)
    number = request_of(engine_of(app), request_id).number
    sandbox.clear()

    sms_from(app.test_client(), CITIZEN, f"CANCEL {number} 1")
    run_jobs(app)

    assert request_of(engine_of(app), request_id).status is RequestStatus.CANCELLED
    [event] = events(app, request_id, AuditAction.REQUEST_CANCELLED)
    assert (event.reason, event.detail["via"]) == ("no longer needed", "sms")
    assert texts_to(sandbox, CITIZEN) == [f"Sewamitra: your request {number} is cancelled. To book again, call 155330."]
    [told] = texts_to(sandbox, WORKER)
    assert f"काम {number} रद्द" in told


def test_a_hindi_cancel_without_a_number_cancels_the_one_open_request(app: Flask) -> None:
    request_id = a_request(app)
    sms_from(app.test_client(), CITIZEN, "रद्द करो")
    run_jobs(app)
    assert request_of(engine_of(app), request_id).status is RequestStatus.CANCELLED


def test_a_stranger_cannot_cancel_a_request_by_sms(app: Flask, sandbox: TwilioSandbox) -> None:
    request_id = offered(app)
    number = request_of(engine_of(app), request_id).number
    sandbox.clear()

    sms_from(app.test_client(), STRANGER, f"cancel {number}")
    run_jobs(app)

    assert request_of(engine_of(app), request_id).status is RequestStatus.OFFERED
    assert [o.status for o in offers_of(app, request_id)] == [OfferStatus.PENDING]
    [refusal] = texts_to(sandbox, STRANGER)
    assert refusal == f"सेवामित्र: अनुरोध {number} इस नंबर से दर्ज नहीं है, इसलिए रद्द नहीं हुआ। सहायता: 155330"
    assert texts_to(sandbox, WORKER) == []
    [refused] = events(app, request_id, AuditAction.REQUEST_CHANGE_REFUSED)
    assert refused.actor == "phone:0899"


def test_a_cancel_by_sms_too_close_to_the_visit_asks_an_agent_to_call_back(app: Flask, sandbox: TwilioSandbox) -> None:
    request_id = assigned(app, TODAY_AFTERNOON)
    number = request_of(engine_of(app), request_id).number
    sandbox.clear()

    sms_from(app.test_client(), CITIZEN, f"CANCEL {number}")
    sms_from(app.test_client(), CITIZEN, f"CANCEL {number}")  # twice: one callback
    run_jobs(app)

    assert request_of(engine_of(app), request_id).status is RequestStatus.ASSIGNED
    with Session(engine_of(app)) as session:
        [callback] = session.exec(select(CallbackRequest)).all()
    assert (callback.request_id, callback.reason) == (request_id, "change_asked")
    assert all("an agent will call you about the change" in text for text in texts_to(sandbox, CITIZEN))
    assert texts_to(sandbox, WORKER) == []


def test_asking_for_another_time_by_sms_is_answered_with_the_number_to_call(app: Flask, sandbox: TwilioSandbox) -> None:
    request_id = a_request(app)
    number = request_of(engine_of(app), request_id).number
    sms_from(app.test_client(), CITIZEN, f"change time {number}")
    run_jobs(app)
    assert texts_to(sandbox, CITIZEN)[-1] == f"Sewamitra: to change the time of request {number}, call 155330."
    assert events(app, request_id, AuditAction.REQUEST_RESCHEDULED) == []
