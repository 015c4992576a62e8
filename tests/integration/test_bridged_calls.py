"""A worker and the citizen of their job reach each other only through the helpline: whole calls on
Twilio and on Plivo, run by each platform's documented <Dial> rules (devtools' simulators), with the
dialled phone answering, ringing out or busy. Nobody hears a phone number; the dialled phone sees
the helpline's number; each call lands on the request's timeline with how long it lasted. The
window (assigned, or done within `privacy.bridged_calls.after_completion_hours`) by a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import BridgedCalls, Settings
from devtools.simulator import Callee, Heard, Rang, Talked, Transcript
from dispatch import bridge
from dispatch.bridge import Closed, Dialled, Party
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AuditEvent, Caller, RequestStatus, Role, ServiceRequest, Worker
from tests.console import Console, add_user
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    ENGLISH_DIGITS,
    HINDI_DIGITS,
    add_request,
    add_worker,
    call_form,
    redis_dump,
    signed_post,
    simulator,
    spoken_digits,
    with_hours,
)

# Both databases: the window compares moments in each dialect's SQL.
pytestmark = [pytest.mark.both_databases, pytest.mark.both_platforms]

NOW = datetime(2030, 1, 1, 6, 0, tzinfo=UTC)
WORKER = "+919800000701"
# The helpline's number, as each platform's simulator rings it (conftest's settings; Plivo: digits only).
HELPLINE = {"twilio": "+18005550100", "plivo": "918035350100"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def a_job(
    engine: sa.Engine,
    status: RequestStatus = RequestStatus.ASSIGNED,
    *,
    done: timedelta | None = None,
    worker_phone: str = WORKER,
    language: str = "en",
) -> ServiceRequest:
    """A plumber's visit at 226001 given to a worker speaking `language`; `done` this long before NOW.
    The citizen (CITIZEN) rang before and chose that language too."""
    with Session(engine) as session:
        worker_id = session.exec(select(Worker.id).where(Worker.phone == worker_phone)).first()
    if worker_id is None:
        worker_id = add_worker(engine, "Ramesh Kumar", worker_phone, 0.5)
    request_id = add_request(engine, created=NOW - timedelta(days=1))
    with session_scope(engine) as session:
        session.execute(sa.update(Worker).where(col(Worker.id) == worker_id).values(language=language))
        session.execute(sa.update(Caller).where(col(Caller.phone) == CITIZEN).values(language=language))
        request = session.get(ServiceRequest, request_id)
        assert request is not None
        request.worker_id, request.status, request.assigned_at = worker_id, status, NOW - timedelta(days=1)
        request.completed_at = NOW - done if done is not None else None
        request.updated_at = NOW - (done or timedelta(hours=1))
        request.completion_code = "4321"
        session.add(request)
    with Session(engine) as session:
        found = session.get(ServiceRequest, request_id)
        assert found is not None
        return found


def rings(app: Flask, phone: str, keys: str, callee: Callee | None = None) -> Transcript:
    transcript = simulator(app.test_client(), from_number=phone, callee=callee or Callee()).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def rang(transcript: Transcript) -> list[Rang]:
    return [event for event in transcript.events if isinstance(event, Rang)]


def talked(transcript: Transcript) -> list[Talked]:
    return [event for event in transcript.events if isinstance(event, Talked)]


def digits_of(number: str) -> str:
    return spoken_digits(number, ENGLISH_DIGITS)


def no_number_heard(transcript: Transcript, *phones: str) -> bool:
    """No prompt says a phone number, in figures or digit by digit."""
    for phone in phones:
        forms = [phone[-10:], spoken_digits(phone[-10:], ENGLISH_DIGITS), spoken_digits(phone[-10:], HINDI_DIGITS)]
        if any(form in text for form in forms for text in transcript.heard):
            return False
    return True


def bridged(engine: sa.Engine, request_id: int) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).where(
            AuditEvent.action == AuditAction.REQUEST_CALL_BRIDGED.value, AuditEvent.entity_id == request_id
        )
        return list(session.exec(query.order_by(col(AuditEvent.id))).all())


def platform_number(phone: str, platform: str) -> str:
    return phone.removeprefix("+") if platform == "plivo" else phone


# -- the worker rings --------------------------------------------------------------------------------


def test_a_worker_hears_their_job_and_presses_1_to_be_put_through_to_the_customer(
    app: Flask, engine: sa.Engine, telephony_platform: str
) -> None:
    job = a_job(engine)
    transcript = rings(app, WORKER, "1", Callee("completed", talks=95))

    assert transcript.said("There is no new job for you right now.")
    assert transcript.said(f"Your job {digits_of(job.number)}: Plumber at Lucknow, 2 2 6 0 0 1.")
    assert transcript.said("To call the customer through the helpline, press 1. To hear the address, press 2.")
    assert transcript.said("Connecting you to the customer through the helpline.")
    assert rang(transcript) == [Rang(platform_number(CITIZEN, telephony_platform), HELPLINE[telephony_platform])]
    assert talked(transcript) == [Talked("completed", 95, 900)]
    assert transcript.said("The call has ended.")
    assert transcript.heard[-1].startswith("To call the customer through the helpline, press 1.")  # the job menu
    assert no_number_heard(transcript, CITIZEN, WORKER)

    [event] = bridged(engine, job.id or 0)
    assert (event.actor, event.reason) == (f"worker:{job.worker_id}", "completed")
    assert event.detail == {"from": "worker", "to": "citizen", "seconds": 95, "worker_id": job.worker_id}


def test_in_hindi_the_worker_hears_their_job_and_the_citizen_their_worker(
    app: Flask, engine: sa.Engine, telephony_platform: str
) -> None:
    job = a_job(engine, language="hi")
    number = spoken_digits(job.number, HINDI_DIGITS)
    worker = rings(app, WORKER, "1")
    assert worker.said(f"आपका काम {number}: लखनऊ, 2 2 6 0 0 1 में प्लंबर।")
    assert worker.said("हेल्पलाइन के ज़रिए ग्राहक को कॉल करने के लिए 1 दबाएँ।")
    assert worker.said("हेल्पलाइन के ज़रिए आपको ग्राहक से जोड़ा जा रहा है।")
    assert worker.said("कॉल समाप्त हुई।")
    citizen = rings(app, CITIZEN, "1", Callee("no-answer"))
    assert citizen.said(f"आपका अनुरोध {number}: आपका कार्यकर्ता तय हो गया है और रास्ते में है।")
    assert citizen.said("अपने कार्यकर्ता से बात करने के लिए 1 दबाएँ।")
    assert citizen.said("आपके कार्यकर्ता ने कॉल नहीं उठाई।")
    assert [rang(worker), rang(citizen)] == [
        [Rang(platform_number(CITIZEN, telephony_platform), HELPLINE[telephony_platform])],
        [Rang(platform_number(WORKER, telephony_platform), HELPLINE[telephony_platform])],
    ]
    assert no_number_heard(worker, CITIZEN, WORKER)
    assert no_number_heard(citizen, CITIZEN, WORKER)


def test_the_time_limit_is_the_platforms_to_keep_and_the_timeline_says_how_long(
    app: Flask, engine: sa.Engine, telephony_platform: str
) -> None:
    """privacy.bridged_calls.time_limit_minutes (15): the platform cuts a 20-minute talk at 900 s."""
    job = a_job(engine)
    transcript = rings(app, WORKER, "1", Callee("completed", talks=20 * 60))
    dial = next(r for r in transcript.requests if r.url.endswith(f"/{telephony_platform}/voice/dialled?turn=1"))
    duration = "DialCallDuration" if telephony_platform == "twilio" else "DialBLegDuration"
    assert dial.form[duration] == "900"
    assert talked(transcript) == [Talked("completed", 900, 900)]
    [event] = bridged(engine, job.id or 0)
    assert event.detail["seconds"] == 900


def test_a_customer_who_does_not_answer_is_said_so_and_the_attempt_is_on_the_timeline(
    app: Flask, engine: sa.Engine
) -> None:
    job = a_job(engine)
    transcript = rings(app, WORKER, "1", Callee("no-answer"))
    assert talked(transcript) == [Talked("no-answer")]
    assert transcript.said("The customer did not answer. Please try again later.")
    [event] = bridged(engine, job.id or 0)
    assert (event.reason, event.detail["seconds"]) == ("no_answer", 0)


def test_a_busy_customer_is_said_so(app: Flask, engine: sa.Engine) -> None:
    job = a_job(engine)
    transcript = rings(app, WORKER, "1", Callee("busy"))
    assert transcript.said("The customer's line is busy. Please try again later.")
    assert [e.reason for e in bridged(engine, job.id or 0)] == ["busy"]


def test_two_open_jobs_the_worker_picks_the_second(app: Flask, engine: sa.Engine, telephony_platform: str) -> None:
    older = a_job(engine)
    newer = a_job(engine, RequestStatus.COMPLETED, done=timedelta(hours=2))  # done today: still open for calls
    transcript = rings(app, WORKER, "2,1")
    assert transcript.said("You have 2 open jobs.")
    assert transcript.said(f"For job {digits_of(newer.number)}, Plumber at Lucknow, 2 2 6 0 0 1, press 1.")
    assert transcript.said(f"For job {digits_of(older.number)}, Plumber at Lucknow, 2 2 6 0 0 1, press 2.")
    assert transcript.said(f"Your job {digits_of(older.number)}: Plumber at Lucknow, 2 2 6 0 0 1.")
    assert rang(transcript) == [Rang(platform_number(CITIZEN, telephony_platform), HELPLINE[telephony_platform])]
    assert [e.reason for e in bridged(engine, older.id or 0)] == ["completed"]
    assert bridged(engine, newer.id or 0) == []


def test_a_worker_asks_for_the_address_and_hears_none_was_recorded(app: Flask, engine: sa.Engine) -> None:
    a_job(engine)
    transcript = rings(app, WORKER, "2")
    assert transcript.said("No spoken address was recorded for this job.")
    assert transcript.said("press 1 and the helpline will put you through to them.")
    assert rang(transcript) == []


def test_a_worker_with_no_job_hears_the_usual_menu_and_no_customer_to_call(app: Flask, engine: sa.Engine) -> None:
    add_worker(engine, "Ramesh Kumar", WORKER, 0.5)
    transcript = simulator(app.test_client(), from_number=WORKER).run("-")
    assert not transcript.errors
    assert not transcript.said("call the customer")
    assert transcript.said("बताने के लिए 1 दबाएँ")  # the worker menu, in the worker's Hindi


def test_a_job_done_more_than_24_hours_ago_is_no_longer_offered_for_calls(
    app: Flask, engine: sa.Engine, clock: FrozenClock
) -> None:
    job = a_job(engine, RequestStatus.COMPLETED, done=timedelta(hours=23, minutes=59))
    assert rings(app, WORKER, "-").said(f"Your job {digits_of(job.number)}")
    clock.set(NOW + timedelta(minutes=1, seconds=1))  # 24 h and a second after the work was done
    transcript = rings(app, WORKER, "1")
    assert not transcript.said("Your job")
    assert rang(transcript) == []


def test_a_worker_who_rings_back_after_the_job_is_done_the_next_day_hears_no_job(
    app: Flask, engine: sa.Engine, clock: FrozenClock
) -> None:
    a_job(engine, RequestStatus.CLOSED, done=timedelta(days=3))
    transcript = rings(app, WORKER, "1")
    assert not transcript.said("Your job")
    assert rang(transcript) == []


# -- the citizen rings -------------------------------------------------------------------------------


def test_a_citizen_presses_1_to_speak_to_their_worker(app: Flask, engine: sa.Engine, telephony_platform: str) -> None:
    job = a_job(engine)
    transcript = rings(app, CITIZEN, "1", Callee("completed", talks=40))
    assert transcript.said(f"Your request {digits_of(job.number)}: your worker is assigned and on the way.")
    assert transcript.said("To speak to your worker, press 1.")
    assert transcript.said("Connecting you to your worker through the helpline.")
    assert rang(transcript) == [Rang(platform_number(WORKER, telephony_platform), HELPLINE[telephony_platform])]
    assert transcript.said("The call has ended.")
    assert transcript.heard[-1].startswith("To book a new service, press 1.")  # then the main menu
    assert no_number_heard(transcript, CITIZEN, WORKER)
    [event] = bridged(engine, job.id or 0)
    assert (event.actor, event.reason, event.detail["from"], event.detail["seconds"]) == (
        "citizen",
        "completed",
        "citizen",
        40,
    )


def test_a_citizen_booked_for_by_an_agent_hears_the_notice_then_their_worker_on_a_first_call(
    app: Flask, engine: sa.Engine, telephony_platform: str
) -> None:
    job = a_job(engine)
    with session_scope(engine) as session:  # booked by an agent: the helpline has no language of theirs
        session.execute(sa.update(Caller).where(col(Caller.phone) == CITIZEN).values(language=None))
    transcript = rings(app, CITIZEN, "2,1", Callee("completed", talks=30))  # English, then 1
    assert transcript.said("Before we go on: to serve you, the helpline keeps your phone number")  # the notice first
    assert transcript.said(f"Your request {digits_of(job.number)}: your worker is assigned and on the way.")
    assert rang(transcript) == [Rang(platform_number(WORKER, telephony_platform), HELPLINE[telephony_platform])]
    assert no_number_heard(transcript, CITIZEN, WORKER)
    assert [e.reason for e in bridged(engine, job.id or 0)] == ["completed"]


def test_any_other_key_or_silence_takes_the_citizen_to_the_main_menu(app: Flask, engine: sa.Engine) -> None:
    a_job(engine)
    for keys in ("2", "-"):
        transcript = rings(app, CITIZEN, keys)
        assert transcript.said("To speak to your worker, press 1.")
        assert transcript.heard[-1].startswith("To book a new service, press 1.")
        assert rang(transcript) == []


def test_a_busy_worker_is_said_so_and_the_citizen_reaches_the_menu(app: Flask, engine: sa.Engine) -> None:
    job = a_job(engine)
    transcript = rings(app, CITIZEN, "1", Callee("busy"))
    assert transcript.said("Your worker's line is busy. Please try again later.")
    assert transcript.heard[-1].startswith("To book a new service, press 1.")
    assert [e.reason for e in bridged(engine, job.id or 0)] == ["busy"]


def test_a_citizen_whose_request_has_no_worker_yet_goes_to_the_menu(app: Flask, engine: sa.Engine) -> None:
    add_request(engine)
    with session_scope(engine) as session:
        session.execute(sa.update(Caller).where(col(Caller.phone) == CITIZEN).values(language="en"))
    transcript = rings(app, CITIZEN, "-")
    assert not transcript.said("your worker")
    assert transcript.heard[-1].startswith("To book a new service, press 1.")


def test_a_request_done_three_days_ago_is_explained_then_the_menu(app: Flask, engine: sa.Engine) -> None:
    job = a_job(engine, RequestStatus.CLOSED, done=timedelta(days=3))
    transcript = rings(app, CITIZEN, "1")
    assert transcript.said(
        f"The work on your request {digits_of(job.number)} was done more than 24 hours ago, "
        "so the helpline can no longer put you through to the worker."
    )
    assert rang(transcript) == []
    assert transcript.said("To book a new service, press 1.")


def test_a_cancelled_request_is_explained_then_the_menu(app: Flask, engine: sa.Engine) -> None:
    job = a_job(engine, RequestStatus.CANCELLED)
    transcript = rings(app, CITIZEN, "-")
    assert transcript.said(
        f"Your request {digits_of(job.number)} was cancelled, so the helpline cannot put you through to a worker."
    )
    assert transcript.heard[-1].startswith("To book a new service, press 1.")


def test_the_citizens_window_closes_24_hours_after_the_work(app: Flask, engine: sa.Engine, clock: FrozenClock) -> None:
    job = a_job(engine, RequestStatus.COMPLETED, done=timedelta(hours=24))
    assert rings(app, CITIZEN, "-").said(f"Your request {digits_of(job.number)}: the work is done.")
    clock.set(NOW + timedelta(seconds=1))
    assert rings(app, CITIZEN, "-").said("was done more than 24 hours ago")


# -- the console ------------------------------------------------------------------------------------


def test_the_bridged_call_is_on_the_requests_timeline_in_english_and_hindi_without_a_number(
    app: Flask, engine: sa.Engine
) -> None:
    job = a_job(engine)
    rings(app, WORKER, "1", Callee("completed", talks=95))
    rings(app, CITIZEN, "1", Callee("no-answer"))
    add_user(engine, "vikram", Role.SUPERVISOR)
    add_user(engine, "asha", Role.AGENT)
    english, hindi = Console(app), Console(app)
    english.sign_in("vikram")
    hindi.sign_in("asha")
    hindi.post("/console/language", {"language": "hi", "back": "/console/"})

    timeline = timeline_of(english, job.number)
    worker = f"worker:{job.worker_id}"
    assert f"{worker}: call through the helpline (worker → citizen): completed, 95 s · worker {job.worker_id}" in (
        timeline
    ), timeline
    assert "citizen: call through the helpline (citizen → worker): No answer, 0 s" in timeline
    assert CITIZEN[-10:] not in timeline
    assert WORKER[-10:] not in timeline
    hindi_timeline = timeline_of(hindi, job.number)
    assert "हेल्पलाइन के ज़रिए कॉल (कार्यकर्ता → नागरिक)" in hindi_timeline, hindi_timeline
    assert "95 सेकंड" in hindi_timeline


def timeline_of(console: Console, number: str) -> str:
    html = console.get(f"/console/requests/{number}").get_data(as_text=True)
    return html.split('id="timeline"', 1)[1].split("</ul>", 1)[0]


# -- the rule, at the moment of dialling -------------------------------------------------------------


def test_a_job_cancelled_while_the_worker_listens_is_refused_without_dialling(app: Flask, engine: sa.Engine) -> None:
    job = a_job(engine)

    def cancelled_meanwhile(event: object) -> None:
        if isinstance(event, Heard) and event.text.startswith("To call the customer"):
            with session_scope(engine) as session:
                cancel = sa.update(ServiceRequest).where(col(ServiceRequest.id) == job.id)
                session.execute(cancel.values(status=RequestStatus.CANCELLED))

    transcript = simulator(app.test_client(), from_number=WORKER, on_event=cancelled_meanwhile).run("1")
    assert not transcript.errors
    assert transcript.said("The helpline can no longer put you through to the customer of this job.")
    assert rang(transcript) == []
    assert bridged(engine, job.id or 0) == []


def test_only_a_party_of_the_request_is_put_through_and_only_to_the_other(engine: sa.Engine) -> None:
    job = a_job(engine)
    window = BridgedCalls()
    with Session(engine) as session:
        assert bridge.dialled(session, job.id or 0, Party.WORKER, WORKER, NOW, window) == Dialled(CITIZEN, 900)
        assert bridge.dialled(session, job.id or 0, Party.CITIZEN, CITIZEN, NOW, window) == Dialled(WORKER, 900)
        assert bridge.dialled(session, job.id or 0, Party.CITIZEN, WORKER, NOW, window) is Closed.NOT_YOURS
        assert bridge.dialled(session, job.id or 0, Party.WORKER, "+919415000009", NOW, window) is Closed.NOT_YOURS
        assert bridge.dialled(session, job.id or 0, Party.WORKER, None, NOW, window) is Closed.NOT_YOURS


def test_a_retried_dial_looks_the_number_up_again_and_the_calls_state_keeps_none(
    app: Flask, engine: sa.Engine, redis_client: redis.Redis, telephony_platform: str
) -> None:
    a_job(engine)
    client, voice = app.test_client(), f"/{telephony_platform}/voice"
    form = call_form(telephony_platform, "7", From=platform_number(WORKER, telephony_platform))
    signed_post(client, voice, form)
    first = signed_post(client, f"{voice}/step?turn=0", {**form, "Digits": "1"}).get_data(as_text=True)
    retry = signed_post(client, f"{voice}/step?turn=0", {**form, "Digits": "1"}).get_data(as_text=True)
    number = platform_number(CITIZEN, telephony_platform)
    assert f"<Number>{number}</Number>" in first
    assert number not in retry
    assert f"{voice}/dial?turn=1</Redirect>" in retry  # where the retry is sent: the dial, looked up again
    again = signed_post(client, f"{voice}/dial?turn=1", form).get_data(as_text=True)
    assert f"<Number>{number}</Number>" in again
    assert CITIZEN[-10:] not in redis_dump(redis_client)
