"""What a soak with faults found (SIGKILLed processes, Redis restarted empty, the SMS API answering
500s), each held to its fix: real PostgreSQL and SQLite, real Redis, the Twilio sandbox."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context
from sewamitra.app import create_app
from storage.db import session_scope
from storage.models import SmsLog, Worker
from tests.calls import Line, call
from tests.chaos import RedisServer
from tests.test_dispatch import add_worker, assigned_job, run_jobs, sms_from

WORKER = "+919800000971"


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    return helpline_settings


@pytest.fixture
def webhook(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def test_a_reply_twilio_refuses_is_logged_and_kept_with_the_request_it_is_about(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    request = assigned_job(installed, engine, webhook, WORKER)
    sms_from(webhook, WORKER, f"DONE {request.number} {request.completion_code}")
    sandbox.fail_next(1, status=500)  # the "job done" reply to the worker
    with caplog.at_level(logging.WARNING, logger="dispatch.jobs"):
        run_jobs(installed)

    [line] = [r.getMessage() for r in caplog.records if "completed_worker" in r.getMessage()]
    assert f"request {request.id}" in line and "None" not in line
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
