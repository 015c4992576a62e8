"""Call state in Redis, keyed by CallSid: the flow session and the answer given at each turn, so
a Twilio retry of a step gets the same answer and changes nothing twice."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from flows.engine import Session

PREFIX = "sewamitra:call:"
TTL_S = 4 * 3600  # longer than any call, short enough to keep Redis small
LOCK_TTL_S = 20  # Twilio gives up on a webhook after 15 s


class CallState:
    def __init__(self, connection: redis.Redis, call_sid: str) -> None:
        self.redis = connection
        self.call_sid = call_sid
        self.key = PREFIX + call_sid

    def load(self) -> Session | None:
        raw = self.redis.hget(self.key, "session")
        return Session.from_dict(json.loads(raw)) if raw else None

    def answer(self, step: str) -> str | None:
        """The TwiML already given to the request of this step ("start", or a turn), if any."""
        raw = self.redis.hget(self.key, f"answer:{step}")
        return raw.decode() if isinstance(raw, bytes) else raw

    def save(self, session: Session, step: str, answer: str) -> None:
        """Store the new session and the answer given to `step`, together."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key, "session", json.dumps(session.to_dict(), ensure_ascii=False))
            pipe.hset(self.key, f"answer:{step}", answer)
            pipe.expire(self.key, TTL_S)
            pipe.execute()

    @contextmanager
    def locked(self, wait_s: float = 10) -> Iterator[None]:
        """One request of a call at a time: a retry waits for the first to finish."""
        lock = self.redis.lock(self.key + ":lock", timeout=LOCK_TTL_S, blocking_timeout=wait_s)
        if not lock.acquire():
            raise TimeoutError(f"call {self.key} is busy")
        try:
            yield
        finally:
            with contextlib.suppress(redis.exceptions.LockError):  # expired while we worked
                lock.release()
