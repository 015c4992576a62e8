"""What a soak with faults found (SIGKILLed processes, Redis restarted empty, the SMS API answering
500s), each held to its fix: real PostgreSQL and SQLite, real Redis, the Twilio sandbox."""

from __future__ import annotations

import dataclasses
import gettext
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask.testing import FlaskClient
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlmodel import Session, col, select

from console.labels import DOMAIN, TRANSLATIONS
from core.settings import Settings
from devtools.bench import roundtrips
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, enqueue, jobs
from dispatch.context import install
from sewamitra.app import create_app
from storage.audit import AuditAction
from storage.db import TCP_USER_TIMEOUT_MS, create_engine, session_scope
from storage.models import AuditEvent, Offer, SmsDelivery, SmsHandling, SmsLog, Worker
from tests.calls import Line, call
from tests.chaos import RedisServer
from tests.factories import CITIZEN, add_request, add_worker, assigned_job, offers_of, sms_from
from tests.factories import run_context_jobs as run_jobs

WORKER = "+919800000971"


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    return helpline_settings


@pytest.fixture
def webhook(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def test_a_reply_twilio_refuses_is_logged_and_kept_with_the_request_it_is_about(
    installed: context.JobContext,
    engine: sa.Engine,
    sandbox: TwilioSandbox,
    webhook: FlaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = assigned_job(installed, engine, webhook, WORKER)
    sms_from(webhook, WORKER, f"DONE {request.number} {request.completion_code}")
    sandbox.fail_next(1, status=500)  # the "job done" reply to the worker
    with caplog.at_level(logging.WARNING, logger="dispatch.jobs"):
        run_jobs(installed)

    [line] = [r.getMessage() for r in caplog.records if "completed_worker" in r.getMessage()]
    assert f"request {request.id}" in line
    assert "None" not in line
    with Session(engine) as session:
        [reply] = session.exec(select(SmsLog).where(SmsLog.template == "completed_worker")).all()
    assert (reply.request_id, reply.status) == (request.id, "send_failed")


def test_an_english_speaking_worker_waiting_for_an_agent_hears_english_after_redis_restarts_empty(
    chaos_settings: Settings, own_redis: RedisServer, postgres: sa.Engine
) -> None:
    worker_id = add_worker(postgres, "Ramesh Kumar", WORKER, 0.5)
    with session_scope(postgres) as session:
        session.execute(sa.update(Worker).where(col(Worker.id) == worker_id).values(language="en"))
    app = create_app(chaos_settings)

    def redis_restarts_empty() -> None:
        own_redis.kill()
        own_redis.start()

    # A worker rings and keys 0 for an agent; Redis restarts empty while they wait, and they listen on.
    transcript = call(app, Line("0", "-", redis_restarts_empty, "-", "1"), caller=WORKER)
    assert transcript.said("Please hold; the next available agent will take your call.")
    assert transcript.said("Thank you. An agent will call you back soon.")
    assert "(hi-IN)" not in transcript.render(), transcript.render()  # before the restart and after it


def later(engine: sa.Engine, minutes: int) -> None:
    """The clock moves on `minutes` for every message and offer: tries fall due, past the sweeper's grace."""
    by = timedelta(minutes=minutes)
    with session_scope(engine) as session:
        for sms in session.exec(select(SmsLog)).all():
            sms.created_at, sms.updated_at = sms.created_at - by, sms.updated_at - by
            sms.next_attempt_at = sms.next_attempt_at - by if sms.next_attempt_at else None
            session.add(sms)
        for offer in session.exec(select(Offer)).all():
            offer.created_at, offer.expires_at = (
                offer.created_at - by,
                offer.expires_at - by if offer.expires_at else None,
            )
            session.add(offer)


def confirmation(engine: sa.Engine, request_id: int) -> int:
    """The SMS that tells a caller their request number, recorded as a booking records it."""
    with session_scope(engine) as session:
        sms = SmsLog(
            to_number=CITIZEN,
            body="Request booked",
            template="request_created",
            status=SmsDelivery.PENDING,
            request_id=request_id,
        )
        session.add(sms)
        session.flush()
        assert sms.id is not None
        return sms.id


def sms_row(engine: sa.Engine, sms_id: int) -> SmsLog:
    with Session(engine) as session:
        sms = session.get(SmsLog, sms_id)
        assert sms is not None
        return sms


def test_sms_due_are_sent_by_one_job_and_one_refused_is_tried_again_by_a_job_of_its_own(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    sms_ids = [confirmation(engine, add_request(engine)) for _ in range(3)]
    sandbox.fail_next(1, status=500)  # the first of them
    assert enqueue.send_many_sms(installed.redis, sms_ids)
    [batch] = Queue("default", connection=redis_client).jobs
    assert batch.func_name == "dispatch.jobs.send_due_sms"

    run_jobs(installed)

    assert len(sandbox.messages) == 2
    assert [sms_row(engine, sms_id).status for sms_id in sms_ids] == ["send_failed", "queued", "queued"]
    retry = ScheduledJobRegistry("default", connection=redis_client)
    assert retry.get_job_ids() == [f"sms-{sms_ids[0]}"]  # on the SMS's own schedule: 10 s, then 30 and 90
    retry.remove(f"sms-{sms_ids[0]}")
    Queue("default", connection=redis_client).enqueue_job(Job.fetch(f"sms-{sms_ids[0]}", connection=redis_client))
    run_jobs(installed)
    assert [sms_row(engine, sms_id).status for sms_id in sms_ids] == ["queued"] * 3
    assert len(sandbox.messages) == 3  # each sent once


def test_sms_due_whose_job_finds_the_database_out_are_sent_by_the_sweeper(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    sms_ids = [confirmation(engine, add_request(engine)) for _ in range(2)]
    assert enqueue.send_many_sms(installed.redis, sms_ids)
    out = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing", connect_args={"connect_timeout": 1})
    install(dataclasses.replace(installed, engine=out))
    try:
        with pytest.raises(sa.exc.OperationalError):
            jobs.send_due_sms()
    finally:
        install(installed)
    assert sandbox.messages == []
    assert redis_client.llen(enqueue.TEXTS.key) == 0  # taken by the job that failed

    later(engine, minutes=5)
    assert jobs.sweep()["unsent_sms"] == 2
    run_jobs(installed)
    assert sorted(m["to"] for m in sandbox.messages) == [CITIZEN, CITIZEN]
    assert [sms_row(engine, sms_id).status for sms_id in sms_ids] == ["queued"] * 2


def test_an_sms_twilio_refused_is_sent_from_the_database_after_redis_lost_its_retry(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    sms_id = confirmation(engine, add_request(engine))
    sandbox.fail_next(1, status=500)
    enqueue.send_sms(installed.redis, sms_id)
    run_jobs(installed)
    assert sms_row(engine, sms_id).status == "send_failed"
    assert sandbox.messages == []

    redis_client.flushdb()  # Redis restarts empty: RQ's retry of the message is gone
    later(engine, minutes=5)
    jobs.sweep()
    run_jobs(installed)

    [sent] = [m for m in sandbox.messages if m["to"] == CITIZEN]
    assert (sms_row(engine, sms_id).status, sms_row(engine, sms_id).message_sid) == ("queued", sent["sid"])
    jobs.sweep()
    run_jobs(installed)
    assert len(sandbox.messages) == 1  # sent once


def test_an_sms_twilio_keeps_refusing_is_given_up_after_its_tries_and_shown_as_not_sent(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    sms_id = confirmation(engine, add_request(engine))
    sandbox.fail_next(100, status=500)
    enqueue.send_sms(installed.redis, sms_id)
    for _sweep in range(10):  # each sweep finds the next try due (RQ's retries lost every time)
        run_jobs(installed)
        redis_client.flushdb()
        later(engine, minutes=5)
        jobs.sweep()
    run_jobs(installed)

    refused = sms_row(engine, sms_id)
    assert (refused.status, refused.attempts, refused.next_attempt_at) == ("not_sent", 4, None)
    assert sandbox.faults_left == 100 - 4
    assert sandbox.messages == []
    with (TRANSLATIONS / "hi" / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as hindi:
        assert gettext.GNUTranslations(hindi).gettext("not_sent") == "भेजा नहीं जा सका"  # as an agent reads it


def test_a_retry_of_an_assignment_sms_for_a_job_cancelled_meanwhile_is_not_sent(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    request_id = add_request(engine)
    with session_scope(engine) as session:
        sms = SmsLog(
            to_number=CITIZEN,
            body="Your plumber",
            template="assigned_citizen",
            status=SmsDelivery.PENDING,
            request_id=request_id,
        )
        session.add(sms)
        session.flush()
        sms_id = sms.id or 0
    sandbox.fail_next(1, status=500)
    enqueue.send_sms(installed.redis, sms_id)
    run_jobs(installed)
    redis_client.flushdb()
    later(engine, minutes=5)  # the request was never assigned: what the SMS says does not hold
    jobs.sweep()
    run_jobs(installed)
    assert sandbox.messages == []
    assert sms_row(engine, sms_id).next_attempt_at is None
    assert jobs.sweep()["refused_sms_due"] == 0


def test_a_message_whose_sender_died_mid_send_and_is_moot_now_is_left_alone_by_the_sweeper(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    """Found by `sewamitra soak`: a worker took its try at an SMS (pending, one attempt), then lost its
    database connection before it could record the outcome; the sweeper's retry found what the SMS said
    no longer held, and left it pending, so every sweep after queued it again, for ever."""
    request_id = add_request(engine)  # never assigned: an assignment SMS about it is moot
    with session_scope(engine) as session:
        sms = SmsLog(
            to_number=CITIZEN,
            body="Your plumber",
            template="assigned_citizen",
            status=SmsDelivery.PENDING,
            request_id=request_id,
            attempts=1,  # claimed by a try whose outcome was never recorded
            next_attempt_at=datetime.now(UTC),
        )
        session.add(sms)
        session.flush()
        sms_id = sms.id or 0
    later(engine, minutes=5)
    assert jobs.sweep()["unsent_sms"] == 1  # the try's outcome is unknown: tried again
    run_jobs(installed)

    assert sandbox.messages == []  # moot: not sent
    assert sms_row(engine, sms_id).next_attempt_at is None
    later(engine, minutes=5)
    assert jobs.sweep()["unsent_sms"] == 0


def test_an_offer_whose_sms_never_left_goes_to_the_next_worker_at_once_after_redis_lost_its_retry(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    add_worker(engine, "Ramesh Kumar", WORKER, 0.5)
    suresh = add_worker(engine, "Suresh Yadav", "+919800000972", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    sandbox.fail_next(1, status=500)  # the offer SMS to Ramesh
    jobs.dispatch_request(request_id)
    run_jobs(installed)
    [offer] = offers_of(engine, request_id)
    redis_client.flushdb()  # Redis restarts empty: the offer's next try is gone
    later(engine, minutes=2)  # the offer has minutes to run yet; its SMS was refused two minutes ago

    assert jobs.sweep()["undelivered_offers"] == 1
    run_jobs(installed)
    first, second = offers_of(engine, request_id)
    assert (first.id, first.status, second.worker_id, second.status) == (offer.id, "expired", suresh, "pending")
    with Session(engine) as session:
        reasons = session.exec(select(AuditEvent.reason).where(AuditEvent.action == AuditAction.OFFER_EXPIRED)).all()
    assert reasons == ["the SMS could not be delivered"]  # undelivered, not unanswered
    assert [m["to"] for m in sandbox.messages] == ["+919800000972"]


def test_a_postgresql_connection_gives_up_on_a_host_that_goes_silent_mid_query(postgres: sa.Engine) -> None:
    # A userland proxy cannot go silent as a host does (its kernel acknowledges what it stops passing
    # on), so this holds the connection's settings to what makes libpq give up: keepalive probes, and
    # an error when what it sent stays unacknowledged for TCP_USER_TIMEOUT_MS.
    with postgres.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        given = raw.info.get_parameters()
    assert given["tcp_user_timeout"] == str(TCP_USER_TIMEOUT_MS)
    assert TCP_USER_TIMEOUT_MS <= 5000
    assert (given["keepalives"], given["keepalives_idle"], given["keepalives_count"]) == ("1", "2", "3")
    assert given["connect_timeout"] == "5"


# -- found by `sewamitra soak`: the database ending the helpline's connections (pg_terminate_backend) --


def test_a_pooled_connection_the_server_ended_is_replaced_at_checkout_without_a_round_trip(
    postgres: sa.Engine,
) -> None:
    """What pool_pre_ping's round trip did, a poll of the socket does: the next request gets a new
    connection, never an error, and asks the server nothing before its own statement."""
    backend = sa.text("SELECT pg_backend_pid()")
    with postgres.connect() as connection:
        ended = connection.execute(backend).scalar_one()
    admin = create_engine(postgres.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as other:
        assert other.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": ended}).scalar_one()
    admin.dispose()

    with roundtrips.counted() as trips:
        with postgres.connect() as connection:  # the pool's one connection, ended: a new one in its place
            assert connection.execute(backend).scalar_one() != ended
        with postgres.connect() as connection:  # and that one, alive, is kept
            kept = connection.execute(backend).scalar_one()
        with postgres.connect() as connection:
            assert connection.execute(backend).scalar_one() == kept
    assert trips.postgres == 3 * 3  # BEGIN, the statement and ROLLBACK, three times: no ping before any


def cut_off_at(engine: sa.Engine, starts: str) -> list[str]:
    """The server ends the connection about to run the first statement that starts with `starts`, as
    pg_terminate_backend (an administrator, a failover) would: the statement fails on a dead connection."""
    cut: list[str] = []
    admin = create_engine(engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")

    @sa.event.listens_for(engine, "before_cursor_execute")
    def end_it(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not cut and statement.startswith(starts):
            cut.append(statement)
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": cursor.connection.info.backend_pid})

    return cut


def test_an_sms_twilio_took_is_recorded_as_sent_when_the_connection_is_cut_just_then(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    """Twilio took it; a message left unrecorded would look unsent, and be sent again."""
    sms_id = confirmation(engine, add_request(engine))
    cut = cut_off_at(engine, "UPDATE sms_log SET message_sid")

    jobs.send_sms(sms_id)
    assert cut
    [sent] = sandbox.messages
    recorded = sms_row(engine, sms_id)
    assert (recorded.message_sid, recorded.status, recorded.attempts) == (sent["sid"], "queued", 1)


def test_a_yes_whose_handling_lost_its_database_connection_is_handled_again_not_given_up(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    """A connection cut is not the message's fault: it goes back to `received` for the sweeper, and the
    worker's yes takes the job, instead of `handling_failed` for an agent while the offer runs out."""
    ramesh, request_id, yes = offered_and_answered_yes(installed, engine, webhook)
    cut = cut_off_at(engine, "SELECT worker.")

    with pytest.raises(sa.exc.OperationalError):
        jobs.handle_sms(yes.id or 0)
    assert cut
    assert sms_row(engine, yes.id or 0).status == "received"
    later(engine, minutes=1)
    assert jobs.sweep()["unread_sms"] == 1
    run_jobs(installed)
    assert sms_row(engine, yes.id or 0).status == "handled"
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)] == [(ramesh, "accepted")]


def test_a_yes_abandoned_by_a_killed_worker_is_handled_again_long_before_its_offer_runs_out(
    installed: context.JobContext, engine: sa.Engine, settings: Settings, webhook: FlaskClient
) -> None:
    """Found by the soak: an RQ worker SIGKILLed while handling a worker's yes left it `handling` for
    five minutes (past RQ's default 180 s timeout), as long as the offer it answers lasts. Its job has
    a timeout of its own now, and the sweeper takes the message back once that and a margin are past."""
    ramesh, request_id, yes = offered_and_answered_yes(installed, engine, webhook)
    queued = Queue("dispatch", connection=installed.redis)
    [job] = [job for job in queued.jobs if job.func_name == "dispatch.jobs.handle_sms"]
    assert job.timeout == enqueue.HANDLE_SMS_TIMEOUT_S
    queued.empty()  # an RQ worker took the job, claimed the message, and was killed
    claimed_ago(engine, yes.id or 0, jobs.ABANDONED_AFTER - timedelta(seconds=5))

    assert jobs.sweep()["abandoned_sms"] == 0  # still within its job's timeout: maybe still at it
    assert sms_row(engine, yes.id or 0).status == "handling"
    claimed_ago(engine, yes.id or 0, jobs.ABANDONED_AFTER + timedelta(seconds=5))
    assert jobs.sweep()["abandoned_sms"] == 1
    run_jobs(installed)
    assert sms_row(engine, yes.id or 0).status == "handled"
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)] == [(ramesh, "accepted")]
    # Taken back and handled within a sweep after that: well inside the offer's time, as configured.
    sweep, offer = (timedelta(seconds=s) for s in (settings.dispatch.sweep_interval, settings.dispatch.offer_timeout))
    assert jobs.ABANDONED_AFTER + sweep <= offer / 2


def offered_and_answered_yes(
    installed: context.JobContext, engine: sa.Engine, webhook: FlaskClient
) -> tuple[int, int, SmsLog]:
    """Ramesh is offered a request by SMS and texts yes: his id, the request's, and his message, kept
    and queued for handling."""
    ramesh = add_worker(engine, "Ramesh Kumar", WORKER, 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    run_jobs(installed)
    sms_from(webhook, WORKER, "1")
    with Session(engine) as session:
        yes = session.exec(select(SmsLog).where(SmsLog.direction == "inbound")).one()
    return ramesh, request_id, yes


def claimed_ago(engine: sa.Engine, sms_id: int, ago: timedelta) -> None:
    """The inbound message as a handling job leaves it when it claims it, `ago`."""
    with session_scope(engine) as session:
        sms = session.get_one(SmsLog, sms_id)
        sms.status, sms.updated_at = SmsHandling.HANDLING, datetime.now(UTC) - ago
        session.add(sms)
