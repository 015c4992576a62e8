"""Chaos: PostgreSQL becomes unreachable for a moment. The helpline reaches it through a TCP proxy
process that the test kills (connections refused, open ones cut) and starts again. Callers hear an
apology and wait for an agent; no webhook answers 500; a message or delivery report that comes in
meanwhile is kept and acted on when the database is back; /healthz and the console say what is
wrong instead of crashing. Real PostgreSQL, redis-server and RQ worker processes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select
from twilio.request_validator import RequestValidator

from core.settings import Settings
from devtools.simulator import Queued
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import calllogs, jobs
from dispatch.context import JobContext
from dispatch.queues import QueueName, queue
from storage.models import CallLog, Offer, OfferStatus, RequestStatus, Role, ServiceRequest, SmsLog
from tests.calls import Line, call, call_over_http, running_app, served
from tests.chaos import Chaos, RedisServer, TcpProxy, wait_until
from tests.console import Console, add_user
from tests.factories import AUTH_TOKEN, PUBLIC_URL, add_request, add_worker, request_of

pytestmark = pytest.mark.slow
SORRY = "Sorry, we have a technical problem."
RAMESH, SURESH = "+919800000971", "+919800000972"


@pytest.fixture
def proxy(chaos: Chaos) -> TcpProxy:
    return chaos.proxy()


@pytest.fixture
def settings(chaos_settings: Settings, postgres: sa.Engine, proxy: TcpProxy) -> Settings:
    """The helpline (web and RQ workers) reaches PostgreSQL only through the proxy."""
    through = postgres.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return chaos_settings.model_copy(update={"database_url": through})


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings


def twilio_posts(app: Flask, path: str, form: dict[str, str]) -> int:
    """Twilio posts a signed webhook; the HTTP status it got."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_URL}{path}", form)
    return app.test_client().post(path, data=form, headers={"X-Twilio-Signature": signature}).status_code


def texts(app: Flask, sender: str, body: str, sid: str) -> int:
    return twilio_posts(app, "/twilio/sms", {"MessageSid": sid, "From": sender, "To": "+18005550100", "Body": body})


def handled_messages(engine: sa.Engine) -> list[SmsLog]:
    with Session(engine) as session:
        return list(session.exec(select(SmsLog).where(SmsLog.direction == "inbound", SmsLog.status == "handled")).all())


def offers_of(engine: sa.Engine, request_id: int) -> list[Offer]:
    with Session(engine) as session:
        return list(session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id))).all())


def test_the_database_goes_away_as_a_caller_confirms_they_hear_sorry_and_wait_for_an_agent(
    app: Flask, proxy: TcpProxy, postgres: sa.Engine
) -> None:
    # English, a new request, a plumber, PIN code 226001; PostgreSQL becomes unreachable as the
    # caller presses 1 to confirm. The request cannot be stored, so no number is read out.
    transcript = call(app, Line("2", "1", "1", "226001#", proxy.kill, "1", "9", "-"), caller="+919876500011")
    assert transcript.said("You keyed PIN code two, two, six, zero, zero, one, district Lucknow.")
    assert transcript.said(SORRY)
    assert not transcript.said("Your request number is")
    assert transcript.said("To leave the queue and be called back, press 1.")  # in English, from the call state
    assert [r.status for r in transcript.requests if r.url.endswith("/twilio/voice/status")] == [204]

    # It comes back: the next caller books as if nothing happened.
    proxy.start()
    after = call(app, ["2", "1", "1", "226001#", "1", "9"], caller="+919876500012")
    assert after.said("Your request number is:")
    with Session(postgres) as session:
        [request] = session.exec(select(ServiceRequest)).all()
    assert request.status is RequestStatus.NEW


def test_a_database_that_answers_nothing_gets_the_caller_an_apology_before_twilio_gives_up(
    app: Flask, proxy: TcpProxy, postgres: sa.Engine
) -> None:
    # As the caller confirms, PostgreSQL's host goes dark: connections are accepted and never
    # answered. Each webhook must still answer within Twilio's 15 s, or Twilio logs an error and
    # the caller waits in silence.
    with served(app) as helpline:
        line = Line("2", "1", "1", "226001#", proxy.go_silent, "1", "9", "-")
        transcript = call_over_http(helpline, line, caller="+919876500013")
    assert transcript.said(SORRY)
    assert Queued("helpline") in transcript.events
    assert not transcript.said("Your request number is")


def test_out_of_hours_a_database_that_answers_nothing_still_gets_the_caller_sorry_and_goodbye_in_time(
    settings: Settings, proxy: TcpProxy
) -> None:
    # The centre is closed and PostgreSQL's host is dark before the call comes in. The first
    # webhook waits out one connect timeout (5 s) to learn who rings; the apology must not then try
    # the database again, for the caller's language and to promise a callback (5 s each), or
    # Twilio gives up at 15 s and the caller hears its "application error".
    closed = settings.model_copy(update={"call_centre": settings.call_centre.model_copy(update={"days": ()})})
    proxy.go_silent()
    for app in running_app(closed):
        with served(app) as helpline:
            transcript = call_over_http(helpline, [], caller="+919876500014")
    assert transcript.said(SORRY)
    assert transcript.said("Thank you for calling the Sewamitra helpline.")
    assert not transcript.said("Thank you. An agent will call you back soon.")  # nothing could be recorded
    assert Queued("helpline") not in transcript.events


def test_a_worker_texts_yes_while_the_database_is_unreachable_and_gets_the_job_when_it_is_back(
    app: Flask,
    proxy: TcpProxy,
    postgres: sa.Engine,
    job_context: JobContext,
    chaos: Chaos,
    settings: Settings,
    sandbox: TwilioSandbox,
) -> None:
    add_worker(postgres, "Ramesh Kumar", RAMESH, 0.5)
    jobs.rebuild_index()
    request_id = add_request(postgres)
    jobs.dispatch_request(request_id)

    proxy.kill()
    assert texts(app, RAMESH, "YES", "SM" + "7" * 32) == 200  # Twilio hears it was taken
    proxy.start()

    chaos.worker(settings)
    [yes] = wait_until(lambda: handled_messages(postgres), 60, "the YES to be recorded and handled")
    assert (yes.message_sid, yes.body) == ("SM" + "7" * 32, "YES")
    assert request_of(postgres, request_id).status is RequestStatus.ASSIGNED  # Ramesh has the job
    wait_until(lambda: any(m["to"] == RAMESH for m in sandbox.messages), 30, "Ramesh to be told the address")


def test_an_undelivered_offer_reported_during_the_outage_moves_the_job_on_when_it_is_back(
    app: Flask,
    proxy: TcpProxy,
    postgres: sa.Engine,
    job_context: JobContext,
    chaos: Chaos,
    settings: Settings,
    sandbox: TwilioSandbox,
) -> None:
    add_worker(postgres, "Ramesh Kumar", RAMESH, 0.5)
    suresh = add_worker(postgres, "Suresh Yadav", SURESH, 1.5)
    jobs.rebuild_index()
    request_id = add_request(postgres)
    jobs.dispatch_request(request_id)  # which sends the offer it makes
    [sent] = sandbox.messages

    proxy.kill()
    report = {"MessageSid": sent["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert twilio_posts(app, "/twilio/sms/status", report) == 204
    proxy.start()

    chaos.worker(settings)
    wait_until(lambda: len(offers_of(postgres, request_id)) == 2, 60, "the job to move on to Suresh")
    first, second = offers_of(postgres, request_id)
    assert (first.status, second.worker_id, second.status) == (OfferStatus.EXPIRED, suresh, OfferStatus.PENDING)


def test_a_feedback_call_nobody_answered_during_the_outage_still_falls_back_to_sms(
    app: Flask, proxy: TcpProxy, postgres: sa.Engine, chaos: Chaos, settings: Settings
) -> None:
    # The worklist note cannot be written; the SMS asking for a rating is queued all the same, and
    # the call's log waits in Redis for the writer, which a worker queues once the database is back.
    request_id = add_request(postgres)
    proxy.kill()
    unanswered = {
        "CallSid": "CA" + "5" * 32,
        "To": "+919876543210",
        "From": "+18005550100",
        "Direction": "outbound-api",
        "CallStatus": "no-answer",
    }
    assert twilio_posts(app, f"/twilio/voice/status?feedback={request_id}", unanswered) == 204
    waiting = queue(app.extensions["sewamitra"].redis, QueueName.DISPATCH).job_ids
    assert f"feedback-sms-{request_id}" in waiting
    junk = {**unanswered, "CallSid": "CA" + "6" * 32, "CallStatus": "ring ing/\x00é"}  # no valid RQ job id as it is
    assert twilio_posts(app, "/twilio/voice/status", junk) == 204
    assert calllogs.waiting(app.extensions["sewamitra"].redis) == 2

    proxy.start()
    chaos.worker(settings)
    wait_until(lambda: len(call_logs(postgres)) == 2, 60, "the calls' logs to be written")
    logged = next(log for log in call_logs(postgres) if log.call_sid == unanswered["CallSid"])
    assert (logged.call_sid, logged.status, logged.direction.value) == (unanswered["CallSid"], "no-answer", "outbound")
    assert logged.ended_at is not None


def call_logs(engine: sa.Engine) -> list[CallLog]:
    with Session(engine) as session:
        return list(session.exec(select(CallLog)).all())


def test_with_redis_down_too_an_sms_is_refused_with_503_so_twilio_can_send_it_again(
    app: Flask, proxy: TcpProxy, own_redis: RedisServer
) -> None:
    proxy.kill()
    own_redis.kill()
    assert texts(app, RAMESH, "YES", "SM" + "8" * 32) == 503


def test_healthz_and_the_console_say_the_database_is_unreachable_and_recover(
    app: Flask, proxy: TcpProxy, postgres: sa.Engine
) -> None:
    add_user(postgres, "asha", Role.AGENT)
    asha = Console(app)
    assert asha.sign_in("asha").status_code == 302

    proxy.kill()
    health = asha.get("/healthz")
    assert health.status_code == 503
    assert health.json is not None
    assert health.json["database"].startswith("error")
    assert health.json["redis"] == "ok"
    page = asha.get("/console/queue")
    assert page.status_code == 503
    assert "database cannot be reached" in page.get_data(as_text=True)

    proxy.start()
    assert asha.get("/healthz").status_code == 200
    assert asha.get("/console/queue").status_code == 200  # still signed in
