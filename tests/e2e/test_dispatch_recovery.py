"""An RQ worker process killed in the middle of a dispatch loses nothing: when a worker runs again,
the sweeper finds the request still new and it is offered. Real processes, real PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from rq.registry import StartedJobRegistry

from core.settings import Settings
from dispatch import context, jobs, locks
from dispatch.queues import QueueName, queue
from storage.models import RequestStatus
from telephony.twilio.rest import TwilioTelephony
from tests.chaos import wait_until
from tests.factories import ROOT, add_request, add_worker, request_of

pytestmark = pytest.mark.slow


def start_worker(settings: Settings, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEWAMITRA_", "TWILIO_"))}
    env |= {
        "SEWAMITRA_DATA_DIR": str(tmp_path / "var"),
        "SEWAMITRA_DATABASE_URL": settings.sqlalchemy_url,
        "SEWAMITRA_REDIS_URL": str(settings.redis_url),
        "SEWAMITRA_PUBLIC_URL": settings.public_url,
        "SEWAMITRA_TWILIO__API_BASE_URL": str(settings.twilio.api_base_url),
        "TWILIO_ACCOUNT_SID": str(settings.twilio.account_sid),
        "TWILIO_AUTH_TOKEN": str(settings.twilio.auth_token),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sewamitra", "--config", str(ROOT / "config.yaml"), "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_worker_killed_mid_dispatch_loses_nothing(
    helpline_settings: Settings, engine: sa.Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    context.install(context.JobContext(helpline_settings, engine, redis_client, TwilioTelephony(helpline_settings)))
    try:
        add_worker(engine, "Ramesh Kumar", "+919800000901", 1.0)
        jobs.rebuild_index()
        request_id = add_request(engine, created=datetime.now(UTC) - timedelta(minutes=2))
        # Hold the request's row, so that the worker is caught inside the job: its round waits to move the
        # request on. (A dispatch lock held in Redis would not do: the job leaves such a request for later.)
        with engine.connect() as holder:
            held = holder.begin()
            holder.execute(sa.text("SELECT id FROM service_request WHERE id = :id FOR UPDATE"), {"id": request_id})
            queue(redis_client, QueueName.DISPATCH).enqueue(
                jobs.dispatch_request, request_id, job_id=f"dispatch-{request_id}"
            )
            worker = start_worker(helpline_settings, tmp_path)
            try:
                started = StartedJobRegistry(QueueName.DISPATCH.value, connection=redis_client)
                job_id = f"dispatch-{request_id}"
                wait_until(lambda: job_id in started.get_job_ids(), 30, "the worker to start the job")
                wait_until(lambda: _waits_for_a_row(engine), 30, "the job to wait for the request's row")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)  # the worker and the scheduler process it forked
                worker.wait(10)
            held.rollback()
        assert request_of(engine, request_id).status is RequestStatus.NEW  # the job died with it
        # The killed job's dispatch lock runs out by itself, a minute after it was taken: Redis is told
        # that minute has passed, rather than the test waiting it out.
        left = redis_client.pttl(locks.key(request_id))
        assert 0 < left <= locks.LIFE_MS
        redis_client.pexpire(locks.key(request_id), 1)

        again = start_worker(helpline_settings, tmp_path)
        try:
            assert jobs.sweep()["new_requests"] == 1  # what the scheduler does every sweep_interval
            wait_until(lambda: request_of(engine, request_id).status is RequestStatus.OFFERED, 30, "the offer")
        finally:
            again.terminate()
            again.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(again.pid, signal.SIGKILL)
    finally:
        context.install(None)


def _waits_for_a_row(engine: sa.Engine) -> bool:
    """Whether a session of this database (the worker's) waits for a row lock another holds."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as connection:
        return bool(connection.execute(query).scalar())
