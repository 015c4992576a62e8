"""The dispatch locks of a batch of requests, taken and released in one round trip to Redis each.

A request's dispatch lock (`sewamitra:dispatch-lock:{id}`) keeps two dispatches of it from running at
once. Each is a SET NX PX holding a token of its taker's, as redis-py's `Lock` holds one: only the
taker deletes it, and a killed taker's lock runs out by itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis

PREFIX = "sewamitra:dispatch-lock:"
LIFE_MS = 60_000  # a batch's rounds end well within this; a killed worker's locks run out after it
# Each key deleted only while it still holds our token (another may hold it after it ran out).
RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    released = released + redis.call('del', key)
  end
end
return released
"""


def key(request_id: int) -> str:
    return f"{PREFIX}{request_id}"


@dataclass(frozen=True)
class Held:
    """The requests whose locks a batch took, and the token they hold."""

    token: str
    request_ids: tuple[int, ...]


def take(connection: redis.Redis, request_ids: Sequence[int]) -> Held:
    """The locks of these requests that nobody else holds, taken; the others are left alone."""
    token = uuid.uuid4().hex
    if not request_ids:
        return Held(token, ())
    with connection.pipeline(transaction=False) as pipe:
        for request_id in request_ids:
            pipe.set(key(request_id), token, nx=True, px=LIFE_MS)
        taken = pipe.execute()
    return Held(token, tuple(request_id for request_id, ok in zip(request_ids, taken, strict=True) if ok))


def release(connection: redis.Redis, held: Held) -> int:
    """The locks still ours, given back; how many."""
    if not held.request_ids:
        return 0
    keys = [key(request_id) for request_id in held.request_ids]
    return int(connection.eval(RELEASE, len(keys), *keys, held.token))
