"""RQ queues, the worker class that runs them, and how a long-running RQ process outlives a Redis
outage."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable
from enum import StrEnum
from types import FrameType

import redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker, worker_registration

from dispatch import delayed

log = logging.getLogger(__name__)
# Pauses (seconds) between tries to reach Redis again after it went away; the last one repeats.
REDIS_PAUSES_S = (1, 2, 5, 10)


class QueueName(StrEnum):
    DISPATCH = "dispatch"  # offers and their timeouts: a caller is waiting on these
    DEFAULT = "default"  # SMS, calls, housekeeping


# Listed first is served first.
QUEUE_ORDER = (QueueName.DISPATCH, QueueName.DEFAULT)


def queue(connection: redis.Redis, name: QueueName = QueueName.DEFAULT) -> Queue:
    return Queue(name.value, connection=connection)


REGISTRATION_LOOK_S = 1.0  # a worker looks at its registration at most this often (seconds)


class HelplineWorker(SimpleWorker):
    """A worker that runs jobs in its own process: no fork per job (our jobs are short and
    I/O-bound, and a fork per job would also reopen every database connection). At a heartbeat
    (looking once a second at most) it registers itself again if Redis lost its registration
    (restarted empty): RQ's heartbeat only refreshes a key, and `rq info` and /healthz would count
    no worker while it works.

    RQ beats several times a job, and writes "idle" twice between two jobs: a heartbeat of its
    own goes in one round trip, not two, and a state already written is not written again (the
    registration made again writes it)."""

    asked_to_stop = False  # SIGTERM or SIGINT came: its work loop returns because it was told to
    registration_seen_at = float("-inf")  # time.monotonic() of the last look at the registration
    state_written: str | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        # RQ notes the request (`_stop_requested`) only when it comes during a job; an idle worker's
        # loop just ends, as it ends on an error.
        self.asked_to_stop = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def unsubscribe(self) -> None:
        """Stop listening for RQ's commands (kill, stop) without a second's wait. RQ unsubscribes and
        only then stops its pub/sub thread: the thread may read the unsubscribe's reply first and block
        again for a minute, and RQ's join gives up on it only after a second; every burst of jobs
        ended so about once in ten. Stopped first, the thread ends at that reply."""
        if self.pubsub_thread:
            self.pubsub_thread.stop()
        super().unsubscribe()  # type: ignore[no-untyped-call]

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == self.state_written:
            self._state = state
            return
        super().set_state(state, pipeline)
        self.state_written = state if pipeline is None else None  # a pipeline's write may yet fail

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is None:
            with self.connection.pipeline(transaction=False) as beat:
                super().heartbeat(timeout, beat)
                beat.execute()
        else:
            super().heartbeat(timeout, pipeline)
        if time.monotonic() - self.registration_seen_at < REGISTRATION_LOOK_S:
            return
        self.registration_seen_at = time.monotonic()
        if not self.connection.sismember(worker_registration.REDIS_WORKER_KEYS, self.key):
            self.log.warning("Worker %s: Redis lost this worker's registration; registering it again", self.name)
            with self.connection.pipeline() as again:
                again.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
                worker_registration.register(self, again)
                again.expire(self.key, timeout or self.worker_ttl + 60)
                again.execute()


# An idle RQ worker heartbeats only when its blocking wait for a job ends. When Redis restarts
# empty, redis-py's retries may reconnect that wait to the new server without an error, and with
# RQ's default (420 s, a 405 s wait) the worker stayed uncounted for minutes; it was as long blind
# to a Redis gone silent. 30 s: a wait of 15 s, a socket timeout of 25 s, a dead worker's
# registration gone after 90 s.
WORKER_TTL_S = 30


def worker(connection: redis.Redis, name: str | None = None) -> HelplineWorker:
    """The helpline's RQ worker on every queue, served in QUEUE_ORDER."""
    queues = [queue(connection, q) for q in QUEUE_ORDER]
    return HelplineWorker(queues, connection=connection, name=name, worker_ttl=WORKER_TTL_S)


def work(connection: redis.Redis, *, name: str | None, burst: bool, also: Callable[[redis.Redis], object]) -> None:
    """`sewamitra worker`: run an RQ worker through Redis outages, and move delayed jobs when due
    (dispatch.delayed, not RQ's scheduler: a dead worker's lock held RQ's for minutes), doing `also`
    each time it moves them (`enqueue.each_second`, which this module cannot import)."""

    def run(attempt: int) -> None:
        # A name of its own at each start: RQ refuses one still registered by the worker before it.
        renamed = f"{name}-{attempt}" if name and attempt else name
        helpline_worker = worker(connection, name=renamed)
        helpline_worker.work(burst=burst)
        if not burst and not helpline_worker.asked_to_stop:
            # RQ's worker returns, logging "found an unhandled exception, quitting", on any error
            # it does not expect: a connection that Redis closed outside the wait for a job is one.
            raise WorkerQuit(f"RQ worker {helpline_worker.name} quit on an error")

    if burst:  # what is due now, once, then the queues until they are empty
        mover = delayed.DelayedJobs(connection, [q.value for q in QUEUE_ORDER], also)
        mover.tick()
        mover.stop()
        outlast_redis_outages(run, connection, "RQ worker")
        return
    with delayed.moved(connection, [q.value for q in QUEUE_ORDER], also):
        outlast_redis_outages(run, connection, "RQ worker")


class WorkerQuit(Exception):
    """RQ's worker stopped though nobody asked it to."""


def outlast_redis_outages(run: Callable[[int], object], connection: redis.Redis, what: str) -> None:
    """Run `run(attempt)` until it returns. RQ's worker and cron scheduler stop when their Redis
    connection fails; then wait until Redis answers and start again, so the process outlives the
    outage (rather than exiting, and its supervisor giving up on restarting it while Redis is down)."""
    attempt = 0
    while True:
        try:
            run(attempt)
            return
        except (redis.ConnectionError, redis.TimeoutError, WorkerQuit) as error:
            log.warning("%s: Redis cannot be reached (%s); starting again once it answers", what, error)
        attempt += 1
        if not _redis_answers_again(connection):
            return


def _redis_answers_again(connection: redis.Redis) -> bool:
    """Wait until Redis answers; False when asked to stop meanwhile (nothing is in flight then, so
    SIGTERM may end the process at once)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tries = 0
    try:
        while True:
            time.sleep(REDIS_PAUSES_S[min(tries, len(REDIS_PAUSES_S) - 1)])
            tries += 1
            with contextlib.suppress(redis.RedisError):
                if connection.ping():
                    log.info("Redis answers again")
                    return True
    except KeyboardInterrupt:
        return False
