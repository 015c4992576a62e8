"""Logs are read by more people than citizens' numbers should be: while a call books a plumber, the
offer fails to reach one worker and goes to the next, the worker accepts and finishes by SMS and
the citizen is rung for feedback, every log record is captured, and no citizen's or worker's
number appears in full, nor the auth token, the secret key or the database password. Our own log
lines are clean as written; the production log handler masks what others write (RQ's tracebacks,
PostgreSQL's error details)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlmodel import Session, select

from core.settings import Settings
from devtools.simulator import CallSimulator, FlaskTransport
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, jobs
from dispatch.queues import worker as rq_worker
from sewamitra import logs
from sewamitra.app import create_app
from storage.db import create_engine, session_scope, upgrade
from storage.models import Caller, ServiceRequest
from telephony.port import GatewayError
from telephony.twilio.rest import TwilioTelephony
from tests.factories import ALWAYS_OPEN, AUTH_TOKEN, PUBLIC_URL, add_worker, sms_from, with_hours
from tests.hostile import post_pairs, post_raw

CITIZEN = "+919876543210"
WORKER = "+919800000004"
LEGACY = "+91 98000 00099"  # stored before numbers were kept in E.164: Twilio refuses it, quoting it
SECRET_KEY = "s" * 40  # conftest's
OURS = ("ivr", "dispatch", "agents", "storage", "sewamitra", "flows")


def leaked(text: str, numbers: list[str]) -> list[str]:
    """The numbers whose ten digits appear in `text`, however spaced or dashed."""
    digits = re.sub(r"[\s\-()]", "", text)
    return [number for number in numbers if re.sub(r"\D", "", number)[-10:] in digits]


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def production_log() -> Iterator[io.StringIO]:
    """What the production handler (sewamitra.logs) writes, at every level, from every logger."""
    written = io.StringIO()
    handler = logs.handler(written)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    yield written
    root.removeHandler(handler)


def run_jobs(ctx: context.JobContext) -> None:
    rq_worker(ctx.redis).work(burst=True)


def test_a_whole_job_logs_no_number_and_no_secret(
    installed: context.JobContext,
    settings: Settings,
    sandbox: TwilioSandbox,
    caplog: pytest.LogCaptureFixture,
    production_log: io.StringIO,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(settings)
    client = app.test_client()
    engine = installed.engine
    add_worker(engine, "Legacy Lal", LEGACY, 0.2)
    add_worker(engine, "Ramesh Kumar", WORKER, 0.5)
    jobs.rebuild_index()

    transport = FlaskTransport(client, PUBLIC_URL, AUTH_TOKEN)
    call = CallSimulator(transport, public_url=PUBLIC_URL, from_number=CITIZEN).run("2,1,1,226001#,1,9")
    assert call.said("request number")
    run_jobs(installed)  # the offer to the legacy number fails; the job moves on to Ramesh
    sms_from(client, WORKER, "1")
    run_jobs(installed)
    request = the_request(engine)
    assert request.worker_id is not None
    assert request.completion_code
    sms_from(client, WORKER, f"DONE {request.number} {request.completion_code}")
    run_jobs(installed)
    assert [c["to"] for c in sandbox.calls] == [CITIZEN]  # the feedback call
    forged = urlencode({"From": CITIZEN, "Body": f"call {WORKER}"}).encode()
    assert post_raw(client, "/twilio/sms", forged, signed=False, query=CITIZEN.encode()).status_code == 403

    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in OURS)
    assert leaked(ours, [CITIZEN, WORKER, LEGACY]) == [], ours
    everything = production_log.getvalue()
    assert "could not be delivered" in everything  # the legacy number's failure was logged, masked
    assert leaked(everything, [CITIZEN, WORKER, LEGACY]) == []
    for secret in (AUTH_TOKEN, SECRET_KEY):
        assert secret not in everything
        assert secret not in caplog.text


def the_request(engine: sa.Engine) -> ServiceRequest:
    with Session(engine) as session:
        [request] = session.exec(select(ServiceRequest)).all()
    return request


def test_an_sql_error_carries_no_number_into_the_log(engine: sa.Engine, production_log: io.StringIO) -> None:
    """The statement's parameters are hidden; PostgreSQL's own detail ("Key (phone)=(…)") is masked."""
    with session_scope(engine) as session:
        session.add(Caller(phone=CITIZEN))
    with pytest.raises(sa.exc.IntegrityError) as raised, session_scope(engine) as session:  # noqa: PT012 (add, then flush)
        session.add(Caller(phone=CITIZEN))
        session.flush()
    assert CITIZEN not in str(raised.value).split("DETAIL")[0]
    logging.getLogger("ivr.voice").error("voice webhook failed", exc_info=raised.value)
    assert "IntegrityError" in production_log.getvalue()
    assert leaked(production_log.getvalue(), [CITIZEN]) == []


def test_twilios_refusal_quoting_a_number_is_masked_in_the_error(settings: Settings, sandbox: TwilioSandbox) -> None:
    with pytest.raises(GatewayError) as raised:
        TwilioTelephony(settings).send_sms(LEGACY, "namaste")
    assert raised.value.code == 21211
    assert "+91 98xxxxx099" in str(raised.value)
    assert leaked(str(raised.value), [LEGACY]) == []


def test_the_database_password_is_never_logged(
    settings: Settings, postgres_url: str, caplog: pytest.LogCaptureFixture, production_log: io.StringIO
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "pw-never-in-a-log-7319"
    with_password = sa.engine.make_url(postgres_url).set(password=password)
    engine = create_engine(with_password.render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()
    working = settings.model_copy(update={"database_url": with_password.render_as_string(hide_password=False)})
    unreachable = working.model_copy(
        update={"database_url": with_password.set(port=1).render_as_string(hide_password=False)}
    )
    for n, app in enumerate((create_app(working), create_app(unreachable))):
        call(app.test_client(), f"CA{n:032x}")
    assert "voice webhook failed" in caplog.text  # the unreachable database was logged
    assert password not in caplog.text
    assert password not in production_log.getvalue()


def call(client: FlaskClient, call_sid: str) -> None:
    form = [("CallSid", call_sid), ("From", CITIZEN), ("Direction", "inbound")]
    assert post_pairs(client, "/twilio/voice", form).status_code == 200
