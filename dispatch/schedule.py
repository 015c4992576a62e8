"""What the scheduler enqueues, and how often."""

from __future__ import annotations

import redis
from rq.cron import CronScheduler

from dispatch import jobs
from dispatch.queues import QueueName

HEARTBEAT_INTERVAL = 30


def scheduler(connection: redis.Redis) -> CronScheduler:
    cron = CronScheduler(connection=connection, name="")
    cron.register(jobs.heartbeat, QueueName.DEFAULT.value, interval=HEARTBEAT_INTERVAL, result_ttl=60)
    return cron
