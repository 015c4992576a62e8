"""A dispatch batch's request locks: taken together where free, given back together, never another's."""

from __future__ import annotations

import redis

from dispatch import locks


def test_a_batch_takes_the_free_locks_and_leaves_one_held_elsewhere(redis_client: redis.Redis) -> None:
    elsewhere = redis_client.lock(locks.key(2), timeout=60)  # another dispatch of request 2, as redis-py holds it
    assert elsewhere.acquire()

    held = locks.take(redis_client, [1, 2, 3])

    assert held.request_ids == (1, 3)
    assert 0 < int(redis_client.pttl(locks.key(1))) <= locks.LIFE_MS  # a killed batch's locks run out


def test_giving_back_a_batchs_locks_leaves_a_lock_another_took_after_ours_ran_out(redis_client: redis.Redis) -> None:
    held = locks.take(redis_client, [1, 2])
    redis_client.delete(locks.key(2))  # ours ran out…
    assert locks.take(redis_client, [2]).request_ids == (2,)  # …and another dispatch took it

    assert locks.release(redis_client, held) == 1

    assert not redis_client.exists(locks.key(1))
    assert redis_client.exists(locks.key(2))
    assert locks.take(redis_client, [1]).request_ids == (1,)
