"""Issue 19's worker's day, end to end on Twilio and on Plivo: the worker took the job by SMS; texts
"OMW <number> 20"; the citizen is texted the ETA and a start code (never the worker's number); the
worker texts ARRIVED, a wrong code, the right one, then DONE with the completion code. The same by
phone, at the job menu. A worker who has not started by the slot's end: their agency is told, and
past the grace the job is taken back and offered to someone else, by a frozen clock. An agent sends
a code again, or makes a new one, from the request page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Transcript
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, jobs
from dispatch.queues import worker as rq_worker
from sewamitra.app import create_app
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AuditEvent, Offer, OfferStatus, Provider, RequestStatus, Role, ServiceRequest, Worker
from telephony import telephony
from tests.console import Console, add_user, signed_in
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    ENGLISH_DIGITS,
    add_request,
    add_worker,
    engine_of,
    request_of,
    simulator,
    sms_from,
    spoken_digits,
    with_hours,
)
from tests.unit.test_sms_no_phone_number import MOBILE

NOW = datetime(2030, 1, 7, 4, 0, tzinfo=UTC)  # 09:30 in Lucknow
WORKER = "+919800000401"
SECOND = "+919800000402"
AGENCY_PHONE = "+919800000499"


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(helpline_settings: Settings, clock: FrozenClock) -> Iterator[Flask]:
    built = create_app(with_hours(helpline_settings, **ALWAYS_OPEN), clock)
    runtime = built.extensions["sewamitra"]
    context.install(
        context.JobContext(runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings), clock)
    )
    yield built
    context.install(None)
    runtime.engine.dispose()


def work(app: Flask) -> None:
    """What the RQ workers do next: every queued job, by the frozen clock."""
    rq_worker(app.extensions["sewamitra"].redis).work(burst=True)


def digits(number: str) -> str:
    return re.sub(r"\D", "", number)[-10:]


def texts_to(sandbox: TwilioSandbox, phone: str) -> list[str]:
    return [m["body"] for m in sandbox.messages if digits(m["to"]) == digits(phone)]


def events(app: Flask, request_id: int, action: AuditAction) -> list[AuditEvent]:
    with Session(engine_of(app)) as session:
        query = select(AuditEvent).where(AuditEvent.entity_id == request_id, AuditEvent.action == action.value)
        return list(session.exec(query.order_by(col(AuditEvent.id))).all())


def english(app: Flask, *phones: str) -> None:
    with session_scope(engine_of(app)) as session:
        session.execute(sa.update(Worker).where(col(Worker.phone).in_(phones)).values(language="en"))


def job_taken(app: Flask, phone: str = WORKER, *, slot_ends: datetime | None = None) -> ServiceRequest:
    """A plumber's request at 226001 (its slot ending at `slot_ends`) that the worker took by texting 1."""
    if not _worker_exists(app, phone):
        add_worker(engine_of(app), "Ramesh Kumar", phone, 0.5)
    english(app, phone)
    jobs.rebuild_index()
    request_id = add_request(engine_of(app), created=NOW)
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(language="en", slot_starts_at=slot_ends and slot_ends - timedelta(hours=4), slot_ends_at=slot_ends)
        )
    jobs.dispatch_request(request_id)
    work(app)
    sms_from(app.test_client(), phone, "1")
    work(app)
    request = request_of(engine_of(app), request_id)
    assert request.status is RequestStatus.ASSIGNED
    return request


def _worker_exists(app: Flask, phone: str) -> bool:
    with Session(engine_of(app)) as session:
        return session.exec(select(Worker.id).where(Worker.phone == phone)).first() is not None


def code_in(text: str) -> str:
    """The code an SMS gives: its one group of four digits (the request number has seven)."""
    found = re.search(r"(?<!\d)(\d{4})(?!\d)", text)
    assert found, text
    return found.group(1)


def codes_in(text: str) -> list[str]:
    """Every group of four digits in `text`, none of them a part of a longer number."""
    return re.findall(r"(?<!\d)(\d{4})(?!\d)", text)


# -- by SMS -------------------------------------------------------------------------------------------


def test_a_whole_visit_by_sms_on_my_way_arrived_a_wrong_code_the_right_one_then_done(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    job = job_taken(app)
    client = app.test_client()
    completion = code_in(texts_to(sandbox, CITIZEN)[-1])  # "Give code NNNN when done", at assignment

    sms_from(client, WORKER, f"OMW {job.number} 20")
    work(app)
    to_citizen = texts_to(sandbox, CITIZEN)[-1]
    assert to_citizen.startswith(f"Sewamitra: Ramesh Kumar is on the way for request {job.number}, about 20 min.")
    start = code_in(to_citizen)
    assert "155330" in to_citizen
    assert not MOBILE.search(to_citizen)
    assert texts_to(sandbox, WORKER)[-1].startswith(f"Sewamitra: job {job.number}: on the way, 20 min noted.")
    # The worker has it only from the citizen: no group of four digits in their texts is the code (a
    # code such as 5533 is a part of 155330, the helpline's number, which their texts do hold).
    assert start not in codes_in(" ".join(texts_to(sandbox, WORKER)))
    assert request_of(engine_of(app), job.id or 0).eta_minutes == 20

    sms_from(client, WORKER, "omw 20")  # the same again (his one job): the citizen is not texted twice
    work(app)
    assert texts_to(sandbox, WORKER)[-1].startswith(f"Sewamitra: job {job.number}: on the way, 20 min noted.")
    assert len(texts_to(sandbox, CITIZEN)) == 2  # the assignment's, and the one with the ETA and the code

    sms_from(client, WORKER, f"ARRIVED {job.number}")
    work(app)
    assert texts_to(sandbox, WORKER)[-1].startswith(f"Sewamitra: job {job.number}: arrival noted.")
    assert len(texts_to(sandbox, CITIZEN)) == 2  # the citizen has the code already: no second text

    wrong = f"{(int(start) + 1) % 10000:04d}"
    sms_from(client, WORKER, f"START {job.number} {wrong}")
    work(app)
    assert texts_to(sandbox, WORKER)[-1] == (
        f"Sewamitra: the start code for job {job.number} does not match. Tries left: 4. "
        "Ask the customer, or call 155330."
    )
    assert request_of(engine_of(app), job.id or 0).started_at is None

    sms_from(client, WORKER, f"START {job.number} {start}")
    work(app)
    assert texts_to(sandbox, WORKER)[-1].startswith(f"Sewamitra: job {job.number} started.")
    started = request_of(engine_of(app), job.id or 0)
    assert started.started_at == NOW
    assert started.arrived_at == NOW
    assert started.status is RequestStatus.ASSIGNED

    sms_from(client, WORKER, f"DONE {job.number} {completion}")
    work(app)
    done = request_of(engine_of(app), job.id or 0)
    assert done.status is RequestStatus.COMPLETED
    assert texts_to(sandbox, WORKER)[-1] == f"Sewamitra: job {job.number} is recorded as done. Thank you."
    steps = [e.action for e in _timeline(app, job.id or 0)]
    assert steps[-5:] == [
        "request.on_the_way",
        "request.arrived",
        "request.start_refused",
        "request.started",
        "request.completed",
    ]
    [completed] = events(app, job.id or 0, AuditAction.REQUEST_COMPLETED)
    assert completed.reason is None  # started with the code: not flagged


def _timeline(app: Flask, request_id: int) -> list[AuditEvent]:
    with Session(engine_of(app)) as session:
        query = select(AuditEvent).where(AuditEvent.entity == "service_request", AuditEvent.entity_id == request_id)
        return list(session.exec(query.order_by(col(AuditEvent.id))).all())


def test_start_codes_are_locked_after_the_tries_and_done_without_a_start_is_flagged(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    job = job_taken(app)
    client = app.test_client()
    completion = code_in(texts_to(sandbox, CITIZEN)[-1])
    sms_from(client, WORKER, "पहुँच गया")  # arrived, in Hindi, without the number: his one job in hand
    work(app)
    start = code_in(texts_to(sandbox, CITIZEN)[-1])  # no "on my way" came: the code goes now
    assert texts_to(sandbox, CITIZEN)[-1].startswith(f"Sewamitra: the start code for request {job.number} is")
    wrong = f"{(int(start) + 5) % 10000:04d}"
    for _ in range(5):
        sms_from(client, WORKER, f"start {wrong}")
        work(app)
    assert texts_to(sandbox, WORKER)[-1].endswith("Tries left: 0. Ask the customer, or call 155330.")
    sms_from(client, WORKER, f"START {job.number} {start}")  # even the right code, now: an agent must reset it
    work(app)
    assert request_of(engine_of(app), job.id or 0).started_at is None
    assert events(app, job.id or 0, AuditAction.REQUEST_START_REFUSED)[-1].reason == "too many wrong start codes"

    sms_from(client, WORKER, f"DONE {job.number} {completion}")  # done without a start: completes, flagged
    work(app)
    assert request_of(engine_of(app), job.id or 0).status is RequestStatus.COMPLETED
    [completed] = events(app, job.id or 0, AuditAction.REQUEST_COMPLETED)
    assert completed.reason == "done without the start code"
    sms_from(client, WORKER, f"OMW {job.number} 10")  # a finished job has no visit to report
    work(app)
    assert texts_to(sandbox, WORKER)[-1].startswith(f"Sewamitra: job {job.number} is not an open job of yours")


def test_a_visit_message_about_another_workers_job_changes_nothing(app: Flask, sandbox: TwilioSandbox) -> None:
    job = job_taken(app)
    add_worker(engine_of(app), "Suresh", SECOND, 0.7)
    english(app, SECOND)
    sms_from(app.test_client(), SECOND, f"OMW {job.number} 5")
    work(app)
    assert texts_to(sandbox, SECOND)[-1].startswith(f"Sewamitra: job {job.number} is not an open job of yours")
    assert request_of(engine_of(app), job.id or 0).on_the_way_at is None
    assert len(texts_to(sandbox, CITIZEN)) == 1  # only the assignment's


# -- by phone -----------------------------------------------------------------------------------------


def rings(app: Flask, keys: str) -> Transcript:
    transcript = simulator(app.test_client(), from_number=WORKER).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def test_a_whole_visit_by_phone_at_the_job_menu(app: Flask, sandbox: TwilioSandbox) -> None:
    job = job_taken(app)
    completion = code_in(texts_to(sandbox, CITIZEN)[-1])

    call = rings(app, "6,25#")  # on my way, 25 minutes
    assert call.said("To say you are on your way, press 6.")
    assert call.said("In how many minutes will you reach the customer?")
    assert call.said("The customer has been sent your arrival time and a start code by SMS.")
    work(app)
    to_citizen = texts_to(sandbox, CITIZEN)[-1]
    assert f"is on the way for request {job.number}, about 25 min." in to_citizen
    start = code_in(to_citizen)

    wrong = f"{(int(start) + 3) % 10000:04d}"
    call = rings(app, f"7,8,{wrong}#,{start}#,3,{job.number}#,{completion}#")
    assert call.said("Your arrival is noted.")
    assert call.said("That start code does not match. Tries left: 4.")
    assert call.said("Thank you, the work is recorded as started.")
    assert call.said("Thank you, the job is recorded as done.")
    assert call.said(f"Your job {spoken_digits(job.number, ENGLISH_DIGITS)}")
    done = request_of(engine_of(app), job.id or 0)
    assert done.status is RequestStatus.COMPLETED
    assert done.started_at == NOW
    assert not [text for text in call.heard if digits(CITIZEN) in re.sub(r"\D", "", text)]


# -- a worker who has not started by the slot's end ---------------------------------------------------


@pytest.mark.both_databases  # the sweeper's window compares moments in each dialect's SQL
def test_a_late_visit_is_flagged_to_the_agency_then_taken_back_and_offered_to_someone_else(
    app: Flask, sandbox: TwilioSandbox, clock: FrozenClock
) -> None:
    job = job_taken(app, slot_ends=NOW + timedelta(hours=2))
    with session_scope(engine_of(app)) as session:
        agency = Provider(name="Gomti Home Services", district="LUCKNOW", phone=AGENCY_PHONE)
        session.add(agency)
        session.flush()
        session.execute(sa.update(Worker).where(col(Worker.phone) == WORKER).values(provider_id=agency.id))
    add_worker(engine_of(app), "Suresh", SECOND, 0.7)
    english(app, SECOND)
    jobs.rebuild_index()
    add_user(engine_of(app), "gomti", Role.PROVIDER, provider="Gomti Home Services")
    sms_from(app.test_client(), WORKER, f"OMW {job.number} 30")  # set out, and never started
    work(app)

    clock.advance(timedelta(hours=1, minutes=59))
    assert jobs.sweep()["late_visits"] == 0  # the slot has not ended
    clock.advance(timedelta(minutes=2))
    assert jobs.sweep()["late_visits"] == 1
    work(app)
    [late] = events(app, job.id or 0, AuditAction.REQUEST_LATE)
    assert late.actor == "dispatch"
    assert late.reason == "not started by the slot's end"
    [to_agency] = texts_to(sandbox, AGENCY_PHONE)
    assert to_agency.startswith(f"सेवामित्र: काम {job.number} (प्लंबर) Ramesh Kumar ने समय पर शुरू नहीं किया।")
    assert not MOBILE.search(to_agency)
    agency_user = Console(app)
    agency_user.sign_in("gomti")
    page = agency_user.get("/console/requests?late=visit").get_data(as_text=True)
    assert job.number in page  # on the agency's own list of late visits
    assert request_of(engine_of(app), job.id or 0).status is RequestStatus.ASSIGNED

    clock.advance(timedelta(minutes=30))
    assert jobs.sweep()["late_visits"] == 0  # flagged once; the grace is not over
    work(app)
    assert len(texts_to(sandbox, AGENCY_PHONE)) == 1
    clock.advance(timedelta(minutes=31))  # the slot's end and the grace (60 min) are behind
    assert jobs.sweep()["late_visits"] == 1
    work(app)

    again = request_of(engine_of(app), job.id or 0)
    assert again.status is RequestStatus.OFFERED
    assert again.worker_id is None
    assert again.on_the_way_at is None
    assert again.start_code is None
    assert again.late_flagged_at is None
    assert texts_to(sandbox, WORKER)[-1] == (
        f"Sewamitra: job {job.number} was not started in time and has been taken back. Please do not go."
    )
    with Session(engine_of(app)) as session:
        offers = session.exec(select(Offer).where(Offer.request_id == job.id).order_by(col(Offer.id))).all()
        suresh = session.exec(select(Worker.id).where(Worker.phone == SECOND)).one()
    assert [o.status for o in offers] == [OfferStatus.TAKEN_BACK, OfferStatus.PENDING]
    assert offers[-1].worker_id == suresh  # someone else; the late worker is not asked again
    assert texts_to(sandbox, SECOND)[-1].startswith(f"Sewamitra job {job.number}: Plumber")
    assert [e.reason for e in events(app, job.id or 0, AuditAction.REQUEST_ESCALATED)] == [
        "the worker did not start the visit in time"
    ]
    jobs.late_visit(job.id or 0)  # the job again (a retry, the sweeper): nothing more happens
    assert request_of(engine_of(app), job.id or 0).status is RequestStatus.OFFERED


@pytest.mark.both_databases  # the sweeper's window compares moments in each dialect's SQL
def test_a_request_without_a_slot_is_late_a_configured_while_after_its_assignment(
    app: Flask, clock: FrozenClock
) -> None:
    job = job_taken(app)
    rules = app.extensions["sewamitra"].settings.visit
    clock.advance(timedelta(minutes=rules.start_within_minutes - 1))
    assert jobs.sweep()["late_visits"] == 0
    clock.advance(timedelta(minutes=1))
    assert jobs.sweep()["late_visits"] == 1
    work(app)
    assert request_of(engine_of(app), job.id or 0).late_flagged_at == clock.now()


# -- an agent: codes sent again, or made anew ---------------------------------------------------------


def test_an_agent_sends_the_codes_again_or_makes_new_ones_audited_with_their_name(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    job = job_taken(app)
    client = app.test_client()
    sms_from(client, WORKER, f"OMW {job.number} 15")
    work(app)
    first = code_in(texts_to(sandbox, CITIZEN)[-1])
    asha = signed_in(app, "asha", Role.AGENT)
    page = f"/console/requests/{job.number}"
    shown = asha.get(page).get_data(as_text=True)
    assert 'id="resend-start"' in shown
    assert 'id="reset-completion"' in shown
    assert first not in re.sub(r"\d{5,}", "", shown)  # the code is never on the page

    forged = asha.client.post(f"{page}/code", data={"action": "resend", "code": "start"})
    assert forged.status_code == 403  # no CSRF token: refused
    assert asha.post(f"{page}/code", {"action": "resend", "code": "start"}).status_code == 302
    work(app)
    assert texts_to(sandbox, CITIZEN)[-1] == (
        f"Sewamitra: the start code for request {job.number} is {first}. "
        "Give it to the worker only when they are at your door."
    )
    assert asha.post(f"{page}/code", {"action": "reset", "code": "start"}).status_code == 302
    work(app)
    second = code_in(texts_to(sandbox, CITIZEN)[-1])
    assert second != first
    sms_from(client, WORKER, f"START {job.number} {first}")  # the old code no longer works
    work(app)
    assert request_of(engine_of(app), job.id or 0).started_at is None
    sms_from(client, WORKER, f"START {job.number} {second}")
    work(app)
    assert request_of(engine_of(app), job.id or 0).started_at == NOW

    old_completion = request_of(engine_of(app), job.id or 0).completion_code
    assert asha.post(f"{page}/code", {"action": "reset", "code": "completion"}).status_code == 302
    work(app)
    new_completion = code_in(texts_to(sandbox, CITIZEN)[-1])
    assert new_completion != old_completion
    assert texts_to(sandbox, CITIZEN)[-1].startswith(f"Sewamitra: the completion code for request {job.number}")
    sms_from(client, WORKER, f"DONE {job.number} {old_completion}")
    work(app)
    assert request_of(engine_of(app), job.id or 0).status is RequestStatus.ASSIGNED
    sms_from(client, WORKER, f"DONE {job.number} {new_completion}")
    work(app)
    assert request_of(engine_of(app), job.id or 0).status is RequestStatus.COMPLETED

    sent = events(app, job.id or 0, AuditAction.REQUEST_CODE_SENT)
    reset = events(app, job.id or 0, AuditAction.REQUEST_CODE_RESET)
    assert [(e.actor, e.reason) for e in sent] == [(sent[0].actor, "start code")]
    assert [e.reason for e in reset] == ["start code", "completion code"]
    assert sent[0].actor.startswith("user:")
    assert {e.actor for e in reset} == {sent[0].actor}
    timeline = asha.get(page).get_data(as_text=True)
    assert "asha: code sent again: start code" in timeline
    assert "asha: new code: completion code" in timeline
    for code in (first, second, new_completion):
        assert not re.search(rf"(?<!\d){code}(?!\d)", timeline), code  # every code masked on the timeline


def test_an_agents_new_code_opens_a_job_locked_by_wrong_codes(app: Flask, sandbox: TwilioSandbox) -> None:
    job = job_taken(app)
    client = app.test_client()
    sms_from(client, WORKER, f"OMW {job.number} 10")
    work(app)
    start = code_in(texts_to(sandbox, CITIZEN)[-1])
    wrong_completion = f"{(int(job.completion_code or 0) + 1) % 10000:04d}"
    for _ in range(5):  # five wrong start codes, then five wrong completion codes: both locked
        sms_from(client, WORKER, f"START {job.number} {(int(start) + 1) % 10000:04d}")
        sms_from(client, WORKER, f"DONE {job.number} {wrong_completion}")
    work(app)
    asha = signed_in(app, "asha", Role.AGENT)
    page = f"/console/requests/{job.number}"
    assert "wrong start codes: 5" in asha.get(page).get_data(as_text=True)
    sms_from(client, WORKER, f"START {job.number} {start}")
    work(app)
    assert request_of(engine_of(app), job.id or 0).started_at is None  # locked, even with the right code

    asha.post(f"{page}/code", {"action": "reset", "code": "start"})
    work(app)
    new_start = code_in(texts_to(sandbox, CITIZEN)[-1])
    sms_from(client, WORKER, f"START {job.number} {new_start}")
    work(app)
    assert request_of(engine_of(app), job.id or 0).started_at == NOW

    right = request_of(engine_of(app), job.id or 0).completion_code
    sms_from(client, WORKER, f"DONE {job.number} {right}")  # locked after five wrong codes
    work(app)
    assert request_of(engine_of(app), job.id or 0).status is RequestStatus.ASSIGNED
    asha.post(f"{page}/code", {"action": "reset", "code": "completion"})
    work(app)
    new_completion = code_in(texts_to(sandbox, CITIZEN)[-1])
    sms_from(client, WORKER, f"DONE {job.number} {new_completion}")
    work(app)
    assert request_of(engine_of(app), job.id or 0).status is RequestStatus.COMPLETED


def test_an_agent_is_told_why_a_code_cannot_be_sent(app: Flask) -> None:
    job = job_taken(app)
    asha = signed_in(app, "asha", Role.AGENT)
    page = f"/console/requests/{job.number}"
    refused = asha.post(f"{page}/code", {"action": "send everything", "code": "start"}, follow_redirects=True)
    assert "Choose a code and what to do with it." in refused.get_data(as_text=True)
    with session_scope(engine_of(app)) as session:  # the visit started: its start code is spent
        session.execute(sa.update(ServiceRequest).where(col(ServiceRequest.id) == job.id).values(started_at=NOW))
    spent = asha.post(f"{page}/code", {"action": "resend", "code": "start"}, follow_redirects=True)
    assert "the visit has started: the start code is no longer needed" in spent.get_data(as_text=True)
    assert events(app, job.id or 0, AuditAction.REQUEST_CODE_SENT) == []
    gomti = Console(app)
    add_user(engine_of(app), "gomti", Role.PROVIDER, provider="Gomti Home Services")
    gomti.sign_in("gomti")
    assert gomti.post(f"{page}/code", {"action": "resend", "code": "completion"}).status_code == 403
