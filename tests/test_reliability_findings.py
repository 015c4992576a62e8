"""What a soak with faults found (SIGKILLed processes, Redis restarted empty, the SMS API answering
500s), each held to its fix: real PostgreSQL and SQLite, real Redis, the Twilio sandbox."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlmodel import Session, select

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context
from sewamitra.app import create_app
from storage.models import SmsLog
from tests.test_dispatch import assigned_job, run_jobs, sms_from

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
