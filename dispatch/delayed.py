"""Delayed jobs (SMS and offer retries) moved to their queues when they are due, and offers whose time
is up moved to the jobs that expire them (`enqueue.each_second`), by whichever helpline process holds
a lock that outlives a dead holder by seconds.

RQ's own scheduler runs in one worker's child process under a lock of 61 s, and the other workers
look for a free lock only at their maintenance, every ten minutes: a killed holder stopped delayed
work for minutes. Here every `sewamitra worker` and `sewamitra scheduler` runs a mover thread that
tries for the lock every second; the lock lives LOCK_TTL_S unrefreshed, so one process dying (SIGKILL,
the OOM killer) costs at most that much delay. Two movers for a moment (a holder stalled past the
TTL) may queue a job twice: every job can run twice."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

import redis
from rq.scheduler import RQScheduler
from rq.scripts import acquire_or_refresh_lock, release_lock
from rq.utils import now

log = logging.getLogger(__name__)
INTERVAL_S = 1  # how often due jobs are moved, and the lock tried or refreshed
LOCK_TTL_S = 10  # a holder that stops refreshing its lock (it died) loses it after this long
OWNED = ("acquired", "refreshed")


class DelayedJobs(RQScheduler):
    """RQ's scheduler of delayed jobs, run in a thread of the process, with a short-lived lock."""

    def __init__(
        self, connection: redis.Redis, queue_names: Iterable[str], also: Callable[[redis.Redis], object]
    ) -> None:
        # A pool of its own (RQScheduler.connection): an RQ worker lengthens its pool's socket timeout for
        # its long BLPOP, and a connection this thread made before that would cut the BLPOP short.
        super().__init__(list(queue_names), connection=connection, interval=INTERVAL_S)
        self._stopped = threading.Event()
        self._also = also

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        """Take or keep the lock of each queue, for LOCK_TTL_S."""
        owned = {
            name
            for name in self._queue_names
            if acquire_or_refresh_lock(self.connection, self.get_locking_key(name), self.name, LOCK_TTL_S) in OWNED
        }
        if owned != self._acquired_locks:
            if owned - self._acquired_locks:
                log.info("moving the delayed jobs of %s", ", ".join(sorted(owned - self._acquired_locks)))
            self._scheduled_job_registries = []
        self._acquired_locks = owned
        self.lock_acquisition_time = datetime.now()  # type: ignore[assignment]  # RQ annotates it None
        return owned

    def tick(self) -> None:
        """Once a second: say who we are (`rq info`, the lock's holder by pid), hold the locks we can,
        move what is due in their queues, and (the holder) do what else is asked once a second."""
        self.pid, self.last_heartbeat = os.getpid(), now()
        self.save()
        if self.acquire_locks():
            self.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]  # RQ's own, unannotated
            self._also(self.connection)

    def run(self) -> None:
        """Tick until stopped; a Redis error waits for the next tick (Redis restarting, or gone for a while)."""
        failing = False
        while not self._stopped.is_set():
            try:
                self.tick()
                failing = False
            except redis.RedisError as error:
                if not failing:
                    log.warning("delayed jobs: Redis cannot be reached (%s); trying every second", error)
                failing = True
                self._acquired_locks, self._scheduled_job_registries = set(), []
            except Exception:
                log.exception("delayed jobs: could not move the due jobs; trying again")
            self._stopped.wait(INTERVAL_S)

    def stop(self) -> None:
        """Let the locks go at once, for another process to take without waiting out their TTL."""
        self._stopped.set()
        for name in self._acquired_locks:
            release_lock(self.connection, self.get_locking_key(name), self.name)
        self._acquired_locks = set()
        self.connection.delete(self.key)


@contextlib.contextmanager
def moved(
    connection: redis.Redis, queue_names: Iterable[str], also: Callable[[redis.Redis], object]
) -> Iterator[DelayedJobs]:
    """A mover thread for the life of the block (a process's life: the thread dies with it); its lock's
    holder does `also` at each tick."""
    mover = DelayedJobs(connection, queue_names, also)
    thread = threading.Thread(target=mover.run, name="delayed-jobs", daemon=True)
    thread.start()
    try:
        yield mover
    finally:
        mover._stopped.set()
        thread.join(INTERVAL_S * 5)
        with contextlib.suppress(redis.RedisError):
            mover.stop()
