"""Issue 18's "done when", end to end on each platform: a citizen books by phone and says their
address at the beep; dispatch offers the job by SMS and the worker takes it; the worker's SMS names
the job, the place and the helpline's number; the worker rings the helpline, hears the address in the
citizen's own voice (2) and is put through to them (1) with the helpline's number as caller ID. No
SMS and no prompt gives either of them the other's number."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.settings import Settings
from devtools.simulator import Callee, Played, Rang, Talked, Transcript
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, jobs
from storage.db import session_scope
from storage.models import Recording, RequestStatus, ServiceRequest, Worker
from telephony import telephony
from tests.factories import (
    ACCOUNT_SID,
    ALWAYS_OPEN,
    CITIZEN,
    ENGLISH_DIGITS,
    PLIVO_AUTH_ID,
    add_worker,
    engine_of,
    run_jobs,
    simulator,
    sms_from,
    spoken_digits,
    with_hours,
)
from tests.unit.test_sms_no_phone_number import MOBILE

WORKER = "+919800000901"
# The helpline's number, as each platform's simulator rings it (conftest's settings; Plivo: digits only).
HELPLINE = {"twilio": "+18005550100", "plivo": "918035350100"}


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def rings(app: Flask, sandbox: TwilioSandbox, phone: str, keys: str, callee: Callee | None = None) -> Transcript:
    """A call into the helpline whose recordings the platform keeps at its sandbox."""
    account = PLIVO_AUTH_ID if sandbox.name == "Plivo" else ACCOUNT_SID
    setup = {"from_number": phone, "account_sid": account, "media_url": sandbox.base_url}
    transcript = simulator(app.test_client(), callee=callee or Callee(), **setup).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def in_jobs_context(app: Flask, job: object) -> None:
    runtime = app.extensions["sewamitra"]
    context.install(context.JobContext(runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings)))
    try:
        job()  # type: ignore[operator]
    finally:
        context.install(None)


def digits(number: str) -> str:
    return re.sub(r"\D", "", number)[-10:]


def test_the_worker_hears_the_spoken_address_and_talks_to_the_citizen_with_neither_number_given(
    app: Flask, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    ramesh = add_worker(engine_of(app), "Ramesh Kumar", WORKER, 0.5)
    with session_scope(engine_of(app)) as session:  # he reads English
        session.execute(sa.update(Worker).where(col(Worker.id) == ramesh).values(language="en"))
    in_jobs_context(app, jobs.rebuild_index)

    # The citizen books a plumber at 226001 in English and says the address at the beep.
    booking = rings(app, sandbox, CITIZEN, "2,1,1,226001#,1,9,say:9#,2")
    assert booking.said("After the beep, please say your house number, street and a landmark")
    run_jobs(app)  # dispatch: the offer goes to Ramesh by SMS
    sms_from(app.test_client(), WORKER, "1")
    run_jobs(app)

    with Session(engine_of(app)) as session:
        (job,) = session.exec(select(ServiceRequest)).all()
        (recording,) = session.exec(select(Recording)).all()
    assert job.status is RequestStatus.ASSIGNED
    assert recording.request_id == job.id

    to_worker = [m["body"] for m in sandbox.messages if digits(m["to"]) == digits(WORKER)]
    assert to_worker[-1].startswith(
        f"Job {job.number}: Plumber at Lucknow 226001, as soon as possible. To hear the address or call the "
        "customer, call 155330."
    )
    to_citizen = [m["body"] for m in sandbox.messages if digits(m["to"]) == digits(CITIZEN)]
    assert any("Ramesh Kumar will visit for request" in body for body in to_citizen)
    assert not [body for body in to_worker + to_citizen if MOBILE.search(body)]

    # Ramesh rings the helpline: his job, 2 for the address, then 1 to talk to the customer.
    worker_call = rings(app, sandbox, WORKER, "2,1", Callee("completed", talks=60))
    assert worker_call.said(f"Your job {spoken_digits(job.number, ENGLISH_DIGITS)}: Plumber at Lucknow")
    assert worker_call.said("The customer's address, as they said it:")
    assert Played(recording.url) in worker_call.events
    [rang] = [event for event in worker_call.events if isinstance(event, Rang)]
    assert digits(rang.number) == digits(CITIZEN)  # the helpline dials the citizen ...
    assert rang.caller_id == HELPLINE[telephony_platform]  # ... showing its own number, not Ramesh's
    assert [event.status for event in worker_call.events if isinstance(event, Talked)] == ["completed"]
    heard = " ".join(worker_call.heard)
    assert digits(CITIZEN) not in re.sub(r"\D", "", heard)
    assert spoken_digits(digits(CITIZEN), ENGLISH_DIGITS) not in heard
