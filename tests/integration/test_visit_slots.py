"""Issue 19's time slots on the phone, on Twilio and on Plivo: the caller picks when the worker comes
from the slots open at that moment (the app's clock frozen at 10:00 in Lucknow on 3 December 2026),
hears it confirmed and gets it by SMS; the worker is offered the job with its slot, by SMS and on the
phone. A wrong key, silence and a late-night call with nothing open still book the visit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, jobs
from sewamitra.app import create_app
from storage.db import session_scope
from storage.models import ServiceRequest, Worker
from telephony import telephony
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    ENGLISH_DIGITS,
    add_worker,
    call,
    engine_of,
    rq_worker,
    sms_from,
    spoken_digits,
    with_hours,
)

WORKER = "+919800000931"


def ist(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of December 2026 in Lucknow (UTC+5:30), as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=5, minutes=30)


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(ist(3, 10))


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Flask:
    return create_app(settings, clock)


def booked(app: Flask) -> ServiceRequest:
    with Session(engine_of(app)) as session:
        (request,) = session.exec(select(ServiceRequest)).all()
    return request


def run_jobs(app: Flask) -> None:
    """The queued jobs, by the app's clock (the offer's "tomorrow" is the caller's)."""
    runtime = app.extensions["sewamitra"]
    installed = context.JobContext(
        runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings), runtime.clock
    )
    context.install(installed)
    try:
        jobs.rebuild_index()
        rq_worker(runtime.redis).work(burst=True)
    finally:
        context.install(None)


def test_a_caller_books_tomorrow_evening_hears_it_and_gets_it_by_sms(app: Flask, sandbox: TwilioSandbox) -> None:
    # At 10:00 the morning has begun: today afternoon and evening, tomorrow's three.
    transcript = call(app, "2,1,1,226001#,1,5,-")

    assert transcript.said("When should the worker come?")
    assert transcript.said("For today afternoon, 12:00 to 16:00, press 1.")
    assert transcript.said("For tomorrow evening, 16:00 to 20:00, press 5.")
    assert transcript.said("For the first worker free, as soon as possible, press 9.")
    assert not transcript.said("today morning")
    assert transcript.said("The worker will come tomorrow evening, 16:00 to 20:00.")
    request = booked(app)
    assert (request.slot_starts_at, request.slot_ends_at) == (ist(4, 16), ist(4, 20))

    run_jobs(app)
    confirmation = sandbox.messages[-1]
    assert confirmation["to"] == CITIZEN
    assert confirmation["body"] == (
        f"Sewamitra: your request {request.number} (Plumber) is registered. "
        "Visit: tomorrow evening (16:00-20:00). Call 155330 to track it."
    )


def test_the_worker_is_offered_the_job_with_its_slot_by_sms_and_on_the_phone(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    ramesh = add_worker(engine_of(app), "Ramesh Kumar", WORKER, 0.5)
    with session_scope(engine_of(app)) as session:  # he reads English
        session.execute(sa.update(Worker).where(col(Worker.id) == ramesh).values(language="en"))
    call(app, "2,1,1,226001#,1,5,-")
    request = booked(app)
    run_jobs(app)

    [offer] = [m for m in sandbox.messages if m["to"] == WORKER]
    assert offer["body"] == (
        f"Sewamitra job {request.number}: Plumber at Lucknow 226001, tomorrow evening (16:00-20:00). "
        "Reply 1 to accept, 2 to decline, or call 155330."
    )
    spoken = call(app, "", from_number=WORKER)
    number = spoken_digits(request.number, ENGLISH_DIGITS)
    assert spoken.said(
        f"There is a new job for you: request number {number}, Plumber, Lucknow, 2 2 6 0 0 1, "
        "tomorrow evening, 16:00 to 20:00."
    )

    sms_from(app.test_client(), WORKER, "1")
    run_jobs(app)
    assigned = [m for m in sandbox.messages if m["to"] == WORKER][-1]
    assert assigned["body"].startswith(
        f"Job {request.number}: Plumber at Lucknow 226001, tomorrow evening (16:00-20:00). To hear the address"
    )


def test_in_hindi_the_slots_are_read_in_hindi(app: Flask, sandbox: TwilioSandbox) -> None:
    transcript = call(app, "1,1,1,226001#,1,5,-")
    assert transcript.said("कल शाम, 16:00 से 20:00 तक के लिए 5 दबाएँ।")
    assert transcript.said("कारीगर कल शाम, 16:00 से 20:00 तक आएँगे।")
    run_jobs(app)
    assert "विज़िट: कल शाम (16:00-20:00)।" in sandbox.messages[-1]["body"]


def test_wrong_keys_hear_the_slots_again_then_the_visit_is_as_soon_as_possible(app: Flask) -> None:
    transcript = call(app, "2,1,1,226001#,1,7,-,8,-")  # 7 and 8 name no slot; silence between

    assert transcript.said("Sorry, that is not one of the choices.")
    assert transcript.said("We will send the first worker free, as soon as possible.")
    assert transcript.said("The worker will come as soon as possible.")
    request = booked(app)
    assert (request.slot_starts_at, request.slot_ends_at) == (None, None)


def test_nine_books_the_first_worker_free(app: Flask) -> None:
    transcript = call(app, "2,1,1,226001#,1,9,-")
    assert transcript.said("The worker will come as soon as possible.")
    assert booked(app).slot_starts_at is None


def test_late_at_night_with_nothing_open_the_caller_is_told_and_booked_as_soon_as_possible(
    settings: Settings, sandbox: TwilioSandbox
) -> None:
    one_day = settings.model_copy(update={"slots": settings.slots.model_copy(update={"days_ahead": 1})})
    app = create_app(one_day, FrozenClock(ist(3, 22, 30)))

    transcript = call(app, "2,1,1,226001#,1,-")

    assert transcript.said("No visit times are open for booking now, so the first worker free will come")
    assert not transcript.said("When should the worker come?")
    assert booked(app).slot_starts_at is None
    run_jobs(app)
    assert "Visit: as soon as possible." in sandbox.messages[-1]["body"]
