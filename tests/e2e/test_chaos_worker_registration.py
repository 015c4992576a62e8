"""Chaos: Redis restarts empty under idle RQ workers. They go on working, and say so: `rq info` and
/healthz count them again, rather than reporting no worker while jobs are being done. Real
`sewamitra worker` processes on a redis-server of the test's own."""

from __future__ import annotations

import pytest
from rq import Worker
from rq.job import Job, JobStatus

from core.settings import Settings
from dispatch.context import JobContext
from dispatch.queues import QueueName, queue
from sewamitra.app import create_app
from tests.chaos import Chaos, RedisServer, wait_until

pytestmark = pytest.mark.slow


def test_workers_count_again_after_redis_restarts_empty_under_them(
    job_context: JobContext, chaos: Chaos, chaos_settings: Settings, own_redis: RedisServer
) -> None:
    connection = job_context.redis
    chaos.worker(chaos_settings), chaos.worker(chaos_settings)
    wait_until(lambda: Worker.count(connection=connection) == 2, 60, "both RQ workers to register")

    own_redis.kill()
    own_redis.start()  # empty: every worker's registration is gone
    wait_until(lambda: Worker.count(connection=connection) == 2, 60, "both idle workers to be counted again")
    work = [
        queue(connection, QueueName.DEFAULT).enqueue("dispatch.jobs.heartbeat", job_id=f"after-{n}") for n in range(4)
    ]
    wait_until(lambda: all(j.get_status(refresh=True) == JobStatus.FINISHED for j in work), 60, "the workers to work")

    wait_until(lambda: Worker.count(connection=connection) == 2, 60, "both workers to be counted again")
    health = create_app(chaos_settings).test_client().get("/healthz").get_json()
    assert health["rq_workers"] == 2
    assert {w.get_state() for w in Worker.all(connection=connection)} <= {"idle", "busy"}
    assert Job.fetch("after-0", connection=connection).worker_name in {w.name for w in Worker.all(connection)}


def test_idle_workers_count_again_when_redis_forgets_them_under_their_wait(
    job_context: JobContext, chaos: Chaos, chaos_settings: Settings
) -> None:
    """What a restart looks like to a worker when redis-py's retries reconnect its blocking wait
    to the new server: no error, only registrations gone. Nothing but the wait's end brings the
    heartbeat that registers the worker again, so that wait must be short."""
    connection = job_context.redis
    chaos.worker(chaos_settings), chaos.worker(chaos_settings)
    wait_until(lambda: Worker.count(connection=connection) == 2, 60, "both RQ workers to register")

    connection.flushall()  # every registration gone, the workers' connections untouched

    wait_until(lambda: Worker.count(connection=connection) == 2, 60, "both idle workers to be counted again")
    assert create_app(chaos_settings).test_client().get("/healthz").get_json()["rq_workers"] == 2
