"""Chaos: Twilio's SMS API answers 500s, or hangs. Through the real twilio client pointed at the
sandbox, from real `sewamitra worker` processes: a hung request is given up after the gateway's
timeout, a failed send is tried again on RQ's schedule, an offer that cannot be delivered counts
as unanswered and the job moves to the next worker, and a confirmation SMS that never goes out is
left `not_sent` on the request's timeline for an agent. Only the clock is moved: jobs waiting
in RQ's schedule are made due at once."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from rq.registry import FailedJobRegistry
from sqlmodel import Session, col, select

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs
from dispatch.context import JobContext
from dispatch.queues import QueueName
from storage.models import Caller, Offer, OfferStatus, RequestStatus, Role, ServiceRequest, SmsLog
from telephony.twilio.rest import DEFAULT_TIMEOUT
from tests.calls import call
from tests.chaos import Chaos, wait_until
from tests.console import Console, add_user
from tests.factories import add_request, add_worker

pytestmark = pytest.mark.slow
RAMESH, SURESH, CITIZEN = "+919800000981", "+919800000982", "+919876500021"
# A caller who has called before (in English): no language menu, and the privacy notice (and its
# SMS) is behind them, so the only SMS of the call is the request's number.
RETURNING_ENGLISH_PLUMBER_AT_226001 = ["1", "1", "226001#", "1", "9"]


@pytest.fixture
def app_settings(chaos_settings: Settings) -> Settings:
    return chaos_settings


def waits_in_schedule(connection: redis.Redis, job_id: str) -> bool:
    """Whether the job waits in RQ's schedule (a retry, an offer expiry) for a time still to come."""
    return any((connection.zscore(f"rq:scheduled:{name.value}", job_id) or 0) > 0 for name in QueueName)


def time_passes(connection: redis.Redis, job_id: str) -> None:
    """The job's time in RQ's schedule comes at once: the worker's scheduler queues it within a second."""
    wait_until(lambda: waits_in_schedule(connection, job_id), 60, f"{job_id} to be scheduled")
    for name in QueueName:
        connection.zadd(f"rq:scheduled:{name.value}", {job_id: 0}, xx=True)


def called_before(engine: sa.Engine, phone: str) -> None:
    with Session(engine) as session, session.begin():
        session.add(Caller(phone=phone, language="en"))


def sms_to(engine: sa.Engine, phone: str) -> list[SmsLog]:
    with Session(engine) as session:
        return list(session.exec(select(SmsLog).where(SmsLog.to_number == phone).order_by(col(SmsLog.id))).all())


def offers_of(engine: sa.Engine, request_id: int) -> list[Offer]:
    with Session(engine) as session:
        return list(session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id))).all())


def test_an_offer_twilio_refuses_three_times_counts_as_unanswered_and_goes_to_the_next_worker(
    job_context: JobContext, postgres: sa.Engine, sandbox: TwilioSandbox, chaos: Chaos, chaos_settings: Settings
) -> None:
    add_worker(postgres, "Ramesh Kumar", RAMESH, 0.5)
    suresh = add_worker(postgres, "Suresh Yadav", SURESH, 1.5)
    jobs.rebuild_index()
    request_id = add_request(postgres)
    sandbox.fail_next(3, status=500)
    chaos.worker(chaos_settings)

    jobs.enqueue_dispatch(request_id)
    offer = wait_until(lambda: offers_of(postgres, request_id), 60, "the offer to Ramesh")[0]
    time_passes(job_context.redis, f"offer-{offer.id}-2")  # 10 s after the first 500
    time_passes(job_context.redis, f"offer-{offer.id}-3")  # 30 s after the second

    wait_until(lambda: len(offers_of(postgres, request_id)) == 2, 60, "the job to move on to Suresh")
    first, second = offers_of(postgres, request_id)
    assert (first.status, second.worker_id, second.status) == (OfferStatus.EXPIRED, suresh, OfferStatus.PENDING)
    assert [(s.status, s.error_code) for s in sms_to(postgres, RAMESH)] == [("send_failed", "20500")] * 3
    wait_until(lambda: [m for m in sandbox.messages if m["to"] == SURESH], 30, "the offer to reach Suresh")
    assert not [m for m in sandbox.messages if m["to"] == RAMESH]


def test_a_hung_twilio_api_is_given_up_after_the_timeout_and_the_confirmation_is_sent_again(
    app: Flask,
    job_context: JobContext,
    postgres: sa.Engine,
    sandbox: TwilioSandbox,
    chaos: Chaos,
    chaos_settings: Settings,
) -> None:
    sandbox.delay_next(1, seconds=600)  # Twilio's API takes the request and never answers
    chaos.worker(chaos_settings)
    called_before(postgres, CITIZEN)
    transcript = call(
        app, RETURNING_ENGLISH_PLUMBER_AT_226001, caller=CITIZEN
    )  # no plumber near: nothing else is texted
    assert transcript.said("Your request number is:")

    # The worker gives up after the gateway's timeout (not RQ's 180 s for the whole job) ...
    wait_until(
        lambda: [s.status for s in sms_to(postgres, CITIZEN)] == ["send_failed"],
        DEFAULT_TIMEOUT + 30,
        "the worker to give up on Twilio",
    )
    # ... and RQ runs the job again, on the confirmation SMS's Retry schedule.
    [confirmation] = sms_to(postgres, CITIZEN)
    time_passes(job_context.redis, f"sms-{confirmation.id}")
    [sent] = wait_until(lambda: [m for m in sandbox.messages if m["to"] == CITIZEN], 30, "the number by SMS")
    wait_until(lambda: sms_to(postgres, CITIZEN)[0].message_sid == sent["sid"], 30, "Twilio's sid to be kept")
    assert sms_to(postgres, CITIZEN)[0].status == "queued"


def test_a_confirmation_twilio_keeps_refusing_is_left_not_sent_on_the_timeline_for_an_agent(
    app: Flask,
    job_context: JobContext,
    postgres: sa.Engine,
    sandbox: TwilioSandbox,
    chaos: Chaos,
    chaos_settings: Settings,
) -> None:
    sandbox.fail_next(4, status=500)  # the first try and its three retries
    chaos.worker(chaos_settings)
    called_before(postgres, CITIZEN)
    call(app, RETURNING_ENGLISH_PLUMBER_AT_226001, caller=CITIZEN)
    [confirmation] = wait_until(lambda: sms_to(postgres, CITIZEN), 30, "the confirmation SMS to be tried")
    for _retry in range(3):
        time_passes(job_context.redis, f"sms-{confirmation.id}")
    failed = FailedJobRegistry(QueueName.DEFAULT.value, connection=job_context.redis)
    wait_until(lambda: f"sms-{confirmation.id}" in failed.get_job_ids(), 60, "RQ to give up on the SMS")

    [confirmation] = sms_to(postgres, CITIZEN)
    assert (confirmation.status, confirmation.error_code, confirmation.message_sid) == ("not_sent", "20500", None)
    assert confirmation.attempts == 4
    assert confirmation.next_attempt_at is None
    sweep = jobs.sweep()
    assert sandbox.messages == []
    assert sweep["unsent_sms"] == sweep["refused_sms_due"] == 0
    with Session(postgres) as session:
        request = session.exec(select(ServiceRequest)).one()
    assert request.status is RequestStatus.ESCALATED  # no plumber in range: an agent has it anyway
    add_user(postgres, "asha", Role.AGENT)
    asha = Console(app)
    asha.sign_in("asha")
    page = asha.get(f"/console/requests/{request.number}").get_data(as_text=True)
    assert "(request_created)" in page
    assert "<b>not_sent</b>" in page
