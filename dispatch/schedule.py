"""What the scheduler enqueues, and how often."""

from __future__ import annotations

import redis
from rq.cron import CronScheduler

from dispatch import jobs
from dispatch.queues import QueueName, queue
from storage.settings import Settings

HEARTBEAT_INTERVAL = 30


def scheduler(connection: redis.Redis, settings: Settings) -> CronScheduler:
    """The periodic jobs; and, once at start, a rebuild of the worker index from the database."""
    queue(connection, QueueName.DISPATCH).enqueue(jobs.rebuild_index, job_id="rebuild-index")
    cron = CronScheduler(connection=connection, name="")
    cron.register(jobs.heartbeat, QueueName.DEFAULT.value, interval=HEARTBEAT_INTERVAL, result_ttl=60)
    cron.register(jobs.sweep, QueueName.DISPATCH.value, interval=settings.dispatch.sweep_interval, result_ttl=300)
    return cron
