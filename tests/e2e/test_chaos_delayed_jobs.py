"""Chaos: the process that moves RQ's delayed jobs (SMS retries) to their queues, and offers whose time
is up to the jobs that expire them, is SIGKILLed. Another process takes over within seconds, not at
RQ's next maintenance minutes later. Redis comes back without its data, delayed jobs and all: the
movers sweep at once. Real `sewamitra worker` processes on a redis-server of the test's own."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
from rq import Worker
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler

from core.settings import Settings
from dispatch import enqueue, jobs
from dispatch.context import JobContext
from dispatch.queues import QueueName, queue
from storage.db import session_scope
from storage.models import Offer, OfferStatus
from tests.chaos import Chaos, Helpline, RedisServer, wait_until
from tests.factories import add_request, add_worker, offers_of

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


def test_an_offer_past_its_time_when_redis_comes_back_empty_is_expired_at_once_not_at_the_next_sweep(
    job_context: JobContext, chaos: Chaos, chaos_settings: Settings, own_redis: RedisServer, postgres: sa.Engine
) -> None:
    """Found by the short soak in CI: an offer whose expiry job went with Redis closed at the sweep after
    next. A scheduler sleeps through a Redis restart (redis-py reconnects under it), so nothing lost is
    queued again until its next sweep, `dispatch.sweep_interval` away (an hour here, and no scheduler at
    all); the worker's mover of delayed jobs finds the helpline's keys gone and sweeps at once."""
    hourly = chaos_settings.dispatch.model_copy(update={"sweep_interval": 3600})
    worker = chaos.worker(chaos_settings.model_copy(update={"dispatch": hourly}))
    connection = job_context.redis
    wait_until(lambda: connection.exists(enqueue.KEPT), 60, "the mover to look at Redis once")
    silent = add_worker(postgres, "Silent", "+919800000771", 0.5)
    second = add_worker(postgres, "Next", "+919800000772", 1.5)
    jobs.rebuild_index()
    request_id = add_request(postgres)
    jobs.dispatch_request(request_id)
    with session_scope(postgres) as session:  # its time is up; its expiry job is in Redis, not yet due
        session.execute(sa.update(Offer).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))

    own_redis.kill()
    own_redis.start()  # empty: the expiry job is gone

    wait_until(
        lambda: (
            [(o.worker_id, o.status) for o in offers_of(postgres, request_id)]
            == [(silent, OfferStatus.EXPIRED), (second, OfferStatus.PENDING)]
        ),
        TAKEOVER_WITHIN_S,
        "the offer expired and the next worker offered the job",
    )
    assert worker.running


def test_an_offer_whose_time_comes_is_expired_by_the_workers_after_the_process_moving_expiries_is_killed(
    job_context: JobContext, chaos: Chaos, chaos_settings: Settings, postgres: sa.Engine
) -> None:
    """Offers wait for their time in a sorted set, not as RQ jobs: the holder of the movers' lock moves
    those due each second to a batch job. With that holder killed, the other worker moves them."""
    hourly = chaos_settings.dispatch.model_copy(update={"sweep_interval": 3600})  # no sweep to make up for it
    settings = chaos_settings.model_copy(update={"dispatch": hourly})
    connection = job_context.redis
    workers = [chaos.worker(settings), chaos.worker(settings)]
    wait_until(lambda: Worker.count(connection=connection) == 2, 60, "both RQ workers to register")
    moving = wait_until(lambda: holder(connection, workers, QueueName.DISPATCH), 60, "a process to move delayed jobs")
    assert moving is not None
    silent = add_worker(postgres, "Silent", "+919800000781", 0.5)
    second = add_worker(postgres, "Next", "+919800000782", 1.5)
    jobs.rebuild_index()
    request_id = add_request(postgres)
    jobs.dispatch_request(request_id)
    [offer] = offers_of(postgres, request_id)
    soon = datetime.now(UTC) + timedelta(seconds=2)
    with session_scope(postgres) as session:  # its time comes in two seconds
        session.execute(sa.update(Offer).values(expires_at=soon))
    assert enqueue.offer_expiry(connection, offer.id or 0, soon)

    moving.kill()

    wait_until(
        lambda: (
            [(o.worker_id, o.status) for o in offers_of(postgres, request_id)]
            == [(silent, OfferStatus.EXPIRED), (second, OfferStatus.PENDING)]
        ),
        TAKEOVER_WITHIN_S,
        "the offer expired by the surviving worker and the next worker offered the job",
    )
    assert connection.zcard(enqueue.EXPIRING) == 1  # the next worker's offer, waiting for its own time
