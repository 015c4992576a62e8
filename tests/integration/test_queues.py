"""The helpline's RQ worker (`dispatch.queues.worker`), on a real Redis."""

from __future__ import annotations

import redis

from dispatch.queues import worker

# Long enough for any machine, however loaded; RQ's own pub/sub thread, left blocked, waits 60 s.
THREAD_ENDS_WITHIN_S = 30


def test_a_burst_of_work_ends_with_its_command_listener_ended(redis_client: redis.Redis) -> None:
    """Each burst (`sewamitra worker --burst`, every test's "the RQ workers run") subscribes to RQ's
    command channel in a thread and stops it at the end. Stopped after the unsubscribe, as RQ does
    it, the thread sometimes read the reply first and blocked again for a minute; RQ waited a second
    for it, then went on without it."""
    for _ in range(12):
        helpline_worker = worker(redis_client)
        helpline_worker.work(burst=True, logging_level="WARNING")
        listener = helpline_worker.pubsub_thread
        assert listener is not None
        listener.join(THREAD_ENDS_WITHIN_S)
        assert not listener.is_alive()
