"""Call state in Redis, keyed by CallSid: the flow session and the answer given at each turn, so
a Twilio retry of a step gets the same answer and changes nothing twice.

A turn takes three round trips to Redis: the call's lock, the answer and session read together, and
the new ones stored in the same breath as the lock is let go.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.lock import Lock

from flows.engine import Session

PREFIX = "sewamitra:call:"
TTL_S = 4 * 3600  # longer than any call, short enough to keep Redis small
LOCK_TTL_S = 20  # Twilio gives up on a webhook after 15 s

# Store the session and a step's answer; then free the call's lock, but only while it is still ours
# (a request that outlived its lock must not free the one a retry took since).
SAVE_AND_UNLOCK = """
redis.call('HSET', KEYS[1], 'session', ARGV[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) == ARGV[5] then
    redis.call('DEL', KEYS[2])
end
return 1
"""


class CallState:
    def __init__(self, connection: redis.Redis, call_sid: str) -> None:
        self.redis = connection
        self.call_sid = call_sid
        self.key = PREFIX + call_sid
        self.lock_key = self.key + ":lock"
        self._held: Lock | None = None  # the lock this request holds, until save() or the end of locked()

    def load(self) -> Session | None:
        return _session(self.redis.hget(self.key, "session"))

    def answer(self, step: str) -> str | None:
        """The TwiML already given to the request of this step ("start", or a turn), if any."""
        return _text(self.redis.hget(self.key, f"answer:{step}"))

    def recall(self, step: str) -> tuple[str | None, Session | None]:
        """The answer already given to `step` (if this is a retry) and the session, in one round trip."""
        answer, session = self.redis.hmget(self.key, [f"answer:{step}", "session"])
        return _text(answer), _session(session)

    def save(self, session: Session, step: str, answer: str) -> None:
        """Store the new session and the answer given to `step`, together, and let go of the call's lock."""
        token = self._held.local.token if self._held is not None else None
        values = [json.dumps(session.to_dict(), ensure_ascii=False), f"answer:{step}", answer, TTL_S, token or ""]
        self.redis.register_script(SAVE_AND_UNLOCK)(keys=[self.key, self.lock_key], args=values)
        self._held = None

    @contextmanager
    def locked(self, wait_s: float = 10) -> Iterator[None]:
        """One request of a call at a time: a retry waits for the first to finish."""
        lock = self.redis.lock(self.lock_key, timeout=LOCK_TTL_S, blocking_timeout=wait_s)
        if not lock.acquire():
            raise TimeoutError(f"call {self.key} is busy")
        self._held = lock
        try:
            yield
        finally:
            if self._held is lock:  # save() did not let go of it
                self._held = None
                with contextlib.suppress(redis.exceptions.LockError):  # expired while we worked
                    lock.release()


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


def _session(raw: bytes | str | None) -> Session | None:
    return Session.from_dict(json.loads(raw)) if raw else None
