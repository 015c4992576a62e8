"""Chaos: an RQ worker process is killed (SIGKILL, no goodbye) in the middle of a job. RQ leaves the
job in its StartedJobRegistry, and only gives it to another worker if it was queued with a Retry
(and then minutes later, at a worker's maintenance); the helpline's sweeper finds the work the job
left undone and queues it again. Real `sewamitra worker` processes, a redis-server of the test's
own, real PostgreSQL, the Twilio sandbox."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from rq import Worker
from rq.registry import StartedJobRegistry
from rq.worker import WorkerStatus
from sqlmodel import Session, col, select
from twilio.request_validator import RequestValidator

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs
from dispatch.context import JobContext
from dispatch.queues import QueueName
from storage.db import session_scope
from storage.models import Offer, RequestStatus, SmsLog
from tests.chaos import Chaos, wait_until
from tests.factories import AUTH_TOKEN, PUBLIC_URL, add_request, add_worker, request_of

pytestmark = pytest.mark.slow
RAMESH = "+919800000951"


@pytest.fixture
def app_settings(chaos_settings: Settings) -> Settings:
    return chaos_settings


def sms_log(engine: sa.Engine, **where: object) -> list[SmsLog]:
    with Session(engine) as session:
        query = select(SmsLog).where(*[getattr(SmsLog, k) == v for k, v in where.items()])
        return list(session.exec(query.order_by(col(SmsLog.id))).all())


def time_passes(engine: sa.Engine, minutes: int) -> None:
    """The clock moves on `minutes` for every message and request: past the sweeper's grace."""
    earlier = datetime.now(UTC) - timedelta(minutes=minutes)
    with session_scope(engine) as session:
        session.execute(
            sa.update(SmsLog).values(
                created_at=earlier,
                updated_at=earlier,
                next_attempt_at=col(SmsLog.next_attempt_at) - sa.literal(timedelta(minutes=minutes), sa.Interval),
            )
        )


def worker_texts(app: Flask, sender: str, body: str) -> None:
    """A worker's SMS reaches the helpline, signed as Twilio signs it."""
    form = {"MessageSid": "SM" + "5" * 32, "From": sender, "To": "+18005550100", "Body": body}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_URL}/twilio/sms", form)
    answer = app.test_client().post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200


def running(job_context: JobContext, job_id: str) -> bool:
    started = StartedJobRegistry(QueueName.DISPATCH.value, connection=job_context.redis)
    return job_id in started.get_job_ids()


def test_a_worker_killed_while_texting_an_offer_the_offer_is_texted_again(
    job_context: JobContext, postgres: sa.Engine, sandbox: TwilioSandbox, chaos: Chaos, chaos_settings: Settings
) -> None:
    add_worker(postgres, "Ramesh Kumar", RAMESH, 0.5)
    jobs.rebuild_index()
    request_id = add_request(postgres)
    sandbox.delay_next(1, seconds=300)  # Twilio's API hangs on the offer SMS
    first = chaos.worker(chaos_settings)
    jobs.enqueue_dispatch(request_id)
    wait_until(lambda: sandbox.faults_left == 0, 60, "the offer SMS to reach Twilio's API")

    first.kill()  # while it waits for Twilio's answer
    [offer_sms] = sms_log(postgres, template="offer")
    assert offer_sms.message_sid is None
    assert sandbox.messages == []

    chaos.worker(chaos_settings)
    time_passes(postgres, minutes=2)
    assert jobs.sweep()["unsent_sms"] == 1  # what the scheduler does every sweep_interval
    [sent] = wait_until(lambda: [m for m in sandbox.messages if m["to"] == RAMESH], 60, "the offer to reach Ramesh")
    assert request_of(postgres, request_id).number in sent["body"]
    wait_until(lambda: sms_log(postgres, id=offer_sms.id)[0].message_sid == sent["sid"], 30, "Twilio's sid to be kept")
    assert request_of(postgres, request_id).status is RequestStatus.OFFERED


def test_a_worker_killed_while_handling_a_yes_the_yes_is_handled_after_all(
    app: Flask,
    job_context: JobContext,
    postgres: sa.Engine,
    sandbox: TwilioSandbox,
    chaos: Chaos,
    chaos_settings: Settings,
) -> None:
    add_worker(postgres, "Ramesh Kumar", RAMESH, 0.5)
    jobs.rebuild_index()
    request_id = add_request(postgres)
    jobs.dispatch_request(request_id)
    [offer] = list(Session(postgres).exec(select(Offer).where(Offer.request_id == request_id)).all())

    # Ramesh texts YES. The RQ worker claims the message, and is caught inside the job: an agent's
    # transaction holds the offer's row, so accepting it waits. Then the worker is killed.
    with postgres.connect() as agent:
        agent.execute(sa.text("SELECT id FROM offer WHERE id = :id FOR UPDATE"), {"id": offer.id})
        first = chaos.worker(chaos_settings)
        worker_texts(app, RAMESH, "YES")
        wait_until(lambda: sms_log(postgres, direction="inbound", status="handling"), 60, "the worker to take the YES")
        wait_until(
            lambda: running(job_context, f"inbound-{sms_log(postgres, direction='inbound')[0].id}"),
            30,
            "the job to be running",
        )
        first.kill()
        agent.rollback()
    assert request_of(postgres, request_id).status is RequestStatus.OFFERED  # the YES died with the worker

    chaos.worker(chaos_settings)
    time_passes(postgres, minutes=10)  # longer than a handling job may run (its own timeout, 60 s)
    assert jobs.sweep()["abandoned_sms"] == 1
    wait_until(lambda: sms_log(postgres, direction="inbound", status="handled"), 60, "the YES to be handled")
    assert request_of(postgres, request_id).status is RequestStatus.ASSIGNED  # Ramesh has the job
    wait_until(lambda: any(m["to"] == RAMESH for m in sandbox.messages), 60, "Ramesh to be told the address")


def test_an_idle_worker_told_to_stop_stops_and_is_not_started_again(
    job_context: JobContext, chaos: Chaos, chaos_settings: Settings
) -> None:
    """SIGTERM, as `sewamitra up` and systemd stop it: the worker leaves at once, it does not take the
    end of RQ's loop for a Redis outage and listen again until its supervisor kills it."""
    worker = chaos.worker(chaos_settings)
    # Idle: waiting for a job, its signal handlers in place (RQ registers the worker before it installs them).
    waiting = [WorkerStatus.IDLE]
    wait_until(lambda: [w.get_state() for w in Worker.all(connection=job_context.redis)] == waiting, 60, "it to wait")
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0, worker.output()
    assert "Redis cannot be reached" not in worker.output()
    assert Worker.all(connection=job_context.redis) == []
