"""Who is waiting for an agent: the helpline queue as the console sees it, kept in Redis from
Twilio's waitUrl requests (each waiting caller's is fetched again every half minute or so)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

KEY = "sewamitra:helpline-queue"
CLAIM_LOCK = KEY + ":claim"
ON_THE_LINE = KEY + ":agent:"
ON_THE_LINE_TTL_S = 3600
STALE_S = 120  # a caller whose waitUrl has not been fetched for this long has left the queue


@dataclass(frozen=True)
class Waiting:
    call_sid: str
    phone: str | None  # E.164; None when withheld
    language: str
    position: int
    entered_at: float  # epoch seconds: when the caller joined the queue
    seen_at: float
    claimed_by: int | None = None  # the console user whose desk phone is ringing for them

    def wait_s(self, now: float) -> int:
        return max(0, int(now - self.entered_at))


def note_waiting(connection: redis.Redis, call_sid: str, phone: str | None, language: str, position: int,
                 queue_time_s: int, now: float) -> None:  # fmt: skip
    """A waitUrl request: the caller is still in the queue, at `position`, for `queue_time_s`."""
    known = _get(connection, call_sid)
    entry = Waiting(call_sid, phone, language, position, now - queue_time_s, now,
                    known.claimed_by if known else None)  # fmt: skip
    connection.hset(KEY, call_sid, json.dumps(asdict(entry)))


def left(connection: redis.Redis, call_sid: str) -> None:
    connection.hdel(KEY, call_sid)


def waiting(connection: redis.Redis, now: float) -> list[Waiting]:
    """Everyone still waiting, longest wait first; stale entries are dropped."""
    entries = [Waiting(**json.loads(raw)) for raw in connection.hvals(KEY)]
    stale = [e.call_sid for e in entries if now - e.seen_at > STALE_S]
    if stale:
        connection.hdel(KEY, *stale)
    return sorted((e for e in entries if e.call_sid not in stale), key=lambda e: (e.entered_at, e.position))


def claim_next(connection: redis.Redis, user_id: int, now: float) -> Waiting | None:
    """The longest-waiting caller nobody has taken yet, now taken by `user_id` (one agent each).

    `<Dial><Queue>` bridges the agent with the head of Twilio's queue: the same caller, as the
    queue is first in, first out."""
    with connection.lock(CLAIM_LOCK, timeout=5, blocking_timeout=5):
        for entry in waiting(connection, now):
            if entry.claimed_by is None:
                taken = Waiting(**{**asdict(entry), "claimed_by": user_id})
                connection.hset(KEY, entry.call_sid, json.dumps(asdict(taken)))
                return taken
    return None


def bridged(connection: redis.Redis, user_id: int, call_sid: str) -> None:
    """Twilio is connecting this caller to this agent (whoever the console thought was next)."""
    with connection.pipeline() as pipe:
        pipe.hdel(KEY, call_sid)
        pipe.set(ON_THE_LINE + str(user_id), call_sid, ex=ON_THE_LINE_TTL_S)
        pipe.execute()


def on_the_line(connection: redis.Redis, user_id: int) -> str | None:
    """The CallSid of the caller the agent was last bridged with (for an hour)."""
    raw = connection.get(ON_THE_LINE + str(user_id))
    return raw.decode() if isinstance(raw, bytes) else raw


def _get(connection: redis.Redis, call_sid: str) -> Waiting | None:
    raw = connection.hget(KEY, call_sid)
    return Waiting(**json.loads(raw)) if raw else None
