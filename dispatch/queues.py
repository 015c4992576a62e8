"""RQ queues and the worker class that runs them."""

from __future__ import annotations

from enum import StrEnum

import redis
from rq import Queue, SimpleWorker


class QueueName(StrEnum):
    DISPATCH = "dispatch"  # offers and their timeouts: a caller is waiting on these
    DEFAULT = "default"  # SMS, calls, housekeeping


# Listed first is served first.
QUEUE_ORDER = (QueueName.DISPATCH, QueueName.DEFAULT)


def queue(connection: redis.Redis, name: QueueName = QueueName.DEFAULT) -> Queue:
    return Queue(name.value, connection=connection)


def worker(connection: redis.Redis, name: str | None = None) -> SimpleWorker:
    """A worker that runs jobs in its own process: no fork per job (our jobs are short and
    I/O-bound, and a fork per job would also reopen every database connection)."""
    queues = [queue(connection, q) for q in QUEUE_ORDER]
    return SimpleWorker(queues, connection=connection, name=name)
