"""What the scheduler enqueues, and how often."""

from __future__ import annotations

import redis
from rq.cron import CronScheduler

from core.settings import Settings
from dispatch import delayed, enqueue, jobs
from dispatch.queues import QUEUE_ORDER, QueueName, outlast_redis_outages

HEARTBEAT_INTERVAL = 30
RETENTION_CRON = "30 21 * * *"  # nightly, 03:00 in India when the scheduler keeps UTC
REMINDER_CRON = "0 4 * * *"  # daily, 09:30 in India: the agencies' police verification reminders
REBUILD_INTERVAL = 900  # also a safety net: changes made outside the app (a CSV import) reach the index


def scheduler(connection: redis.Redis, settings: Settings) -> CronScheduler:
    """The periodic jobs. Each runs once at start too: the worker index is rebuilt from the database."""
    cron = CronScheduler(connection=connection, name="")
    cron.register(jobs.heartbeat, QueueName.DEFAULT.value, interval=HEARTBEAT_INTERVAL, result_ttl=60)
    cron.register(jobs.sweep, QueueName.DISPATCH.value, interval=settings.dispatch.sweep_interval, result_ttl=300)
    cron.register(jobs.rebuild_index, QueueName.DISPATCH.value, interval=REBUILD_INTERVAL, result_ttl=300)
    cron.register(jobs.erase_expired, QueueName.DEFAULT.value, cron=RETENTION_CRON, result_ttl=86400, job_timeout=3600)
    cron.register(jobs.remind_verification_expiry, QueueName.DEFAULT.value, cron=REMINDER_CRON, result_ttl=86400)
    return cron


def run(connection: redis.Redis, settings: Settings) -> None:
    """`sewamitra scheduler`: the periodic jobs, through Redis outages. A new scheduler after an
    outage runs each job at once: the sweep that brings back what the outage lost, and the index. An
    outage the scheduler slept through (redis-py reconnects under it) starts no new one: there, the
    mover of delayed jobs sweeps at once if Redis lost its data (`enqueue.each_second`). It moves
    delayed jobs too, as each worker does: whichever of them is alive."""
    with delayed.moved(connection, [q.value for q in QUEUE_ORDER], enqueue.each_second):
        outlast_redis_outages(lambda _attempt: scheduler(connection, settings).start(), connection, "scheduler")  # type: ignore[no-untyped-call]
