"""Chaos: the process that moves RQ's delayed jobs (offer expiries, SMS retries) to their queues is
SIGKILLed. Another process takes over within seconds, not at RQ's next maintenance minutes later.
Real `sewamitra worker` processes on a redis-server of the test's own."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import redis
from rq import Worker
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler

from core.settings import Settings
from dispatch.context import JobContext
from dispatch.queues import QueueName, queue
from tests.chaos import Chaos, Helpline, wait_until

pytestmark = pytest.mark.slow
# Far above the seconds a takeover takes, far below the minute a killed holder's lock used to last.
TAKEOVER_WITHIN_S = 45


def holder(connection: redis.Redis, processes: list[Helpline], name: QueueName) -> Helpline | None:
    """The process (or the process group of the one) holding RQ's scheduler lock of queue `name`."""
    owner = connection.get(RQScheduler.get_locking_key(name.value))
    if owner is None:
        return None
    pid = connection.hget(f"rq:scheduler:{owner.decode() if isinstance(owner, bytes) else owner}", "pid")
    if pid is None:
        return None
    try:
        group = os.getpgid(int(pid))
    except ProcessLookupError:
        return None
    return next((p for p in processes if p.process is not None and p.process.pid == group), None)


def test_delayed_jobs_run_within_seconds_after_the_process_moving_them_is_killed(
    job_context: JobContext, chaos: Chaos, chaos_settings: Settings
) -> None:
    connection = job_context.redis
    workers = [chaos.worker(chaos_settings), chaos.worker(chaos_settings)]
    wait_until(lambda: Worker.count(connection=connection) == 2, 60, "both RQ workers to register")
    moving = wait_until(lambda: holder(connection, workers, QueueName.DISPATCH), 60, "a process to move delayed jobs")
    assert moving is not None

    moving.kill()
    delayed = queue(connection, QueueName.DISPATCH).enqueue_in(
        timedelta(seconds=1), "dispatch.jobs.heartbeat", job_id="delayed-after-the-kill"
    )

    wait_until(
        lambda: Job.fetch(delayed.id, connection=connection).get_status() == JobStatus.FINISHED,
        TAKEOVER_WITHIN_S,
        "the delayed job to run after its mover died",
    )
    survivor = next(w for w in workers if w is not moving)
    assert survivor.running
    assert holder(connection, workers, QueueName.DISPATCH) is survivor
