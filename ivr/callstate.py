"""Call state in Redis, keyed by CallSid: the flow session and the answer given at each turn that
commits something, so a Twilio retry of it gets the same answer and changes nothing twice.

One request of a call at a time holds the call's lock. Such a turn takes two round trips to Redis:
the lock taken and the answer and session read in one, the new ones stored and the lock let go in
the other, with the ids its effects pushed for their jobs (`dispatch.enqueue.held`). A turn whose
only write is its session (the call's first request, a turn that waits for a recording or ends the
call, its effects only read) takes one, without the lock (`keep`). A menu turn that commits nothing
takes none: its session travels in its step's URL (`ivr.turntoken`), and the session here is the one
as of the call's last commit (what the call's log, the agents' queue and the record and dial
actions read).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from flows.engine import Session
from storage.redisdb import Lua, direct, with_first_delivery

PREFIX = "sewamitra:call:"
TTL_S = 4 * 3600  # longer than any call, short enough to keep Redis small
LOCK_TTL_S = 20  # Twilio gives up on a webhook after 15 s
LOCK_POLL_S = 0.1  # how often a retry looks whether the first request is done

# Take the call's lock if it is free, and then read the step's answer and the session. With a third
# key, the request's first delivery is marked first (for ARGV[4] seconds), and a request that finds it
# marked (a replay) takes nothing.
TAKE_AND_READ = Lua("""
if KEYS[3] and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then
    return 'replayed'
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return false
end
return redis.call('HMGET', KEYS[1], ARGV[3], 'session')
""")
# Store the session and a step's answer; then free the call's lock, but only while it is still ours
# (a request that outlived its lock must not free the one a retry took since).
SAVE_AND_UNLOCK = Lua("""
redis.call('HSET', KEYS[1], 'session', ARGV[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) == ARGV[5] then
    redis.call('DEL', KEYS[2])
end
return 1
""")
# A turn that commits nothing but its session: store it and the step's answer, unless the step was
# answered before (a retry: that answer is given again) or a request of the call holds its lock (the
# turn is then taken as one that commits). With a third key, the request's first delivery is marked
# first (for ARGV[5] seconds), and a request that finds it marked (a replay) stores nothing.
KEEP_UNLESS_ANSWERED = Lua("""
if KEYS[3] and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[5]) then
    return {'replayed'}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
    return {'busy'}
end
local answered = redis.call('HGET', KEYS[1], ARGV[2])
if answered then
    return {'answered', answered}
end
redis.call('HSET', KEYS[1], 'session', ARGV[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'kept'}
""")
UNLOCK = Lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
""")


class Replayed(Exception):
    """The request was delivered before: its first delivery's key was set already."""


class CallState:
    def __init__(self, connection: redis.Redis, call_sid: str) -> None:
        self._commands = direct(connection)  # a turn's commands, without the client's overhead
        self.call_sid = call_sid
        self.key = PREFIX + call_sid
        self.lock_key = self.key + ":lock"
        self._token = ""  # the lock this request holds, until save() or the end of its turn

    def load(self) -> Session | None:
        return session_of(self._commands("HGET", self.key, "session"))

    def answer(self, step: str) -> str | None:
        """The TwiML already given to the request of this step ("start", or a turn), if any."""
        return _text(self._commands("HGET", self.key, f"answer:{step}"))

    @contextmanager
    def turn(
        self, step: str, wait_s: float = 10, first_delivery: tuple[str, int] | None = None
    ) -> Iterator[tuple[str | None, Session | None]]:
        """One request of a call at a time (a retry waits for the first to finish), given the answer
        already stored for `step` (when this is a retry) and the session. With `first_delivery` (a
        key and its life in seconds: a webhook's replay check), the key is set in the first try's
        round trip, and Replayed raised when it was set already, nothing taken."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + wait_s
        while (found := self._take(token, step, first_delivery)) is None:
            first_delivery = None  # set by the first try
            if time.monotonic() >= deadline:
                raise TimeoutError(f"call {self.key} is busy")
            time.sleep(LOCK_POLL_S)
        self._token = token
        try:
            yield _text(found[0]), session_of(found[1])
        finally:
            if self._token == token:  # save() did not let go of it
                self._token = ""
                self._commands.run(UNLOCK, [self.lock_key], [token])

    def save(self, session: Session, step: str, answer: str, also: Sequence[Sequence[Any]] = ()) -> list[Any]:
        """Store the new session and the answer given to `step`, together, and let go of the call's
        lock; with `also`'s commands in the same round trip, after them: their answers (an error Redis
        answered to one among them)."""
        values: list[str | int] = [
            json.dumps(session.to_dict(), ensure_ascii=False),
            f"answer:{step}",
            answer,
            TTL_S,
            self._token,
        ]
        _saved, answers = self._commands.run_with(SAVE_AND_UNLOCK, [self.key, self.lock_key], values, also)
        self._token = ""
        return answers

    def keep(
        self, session: Session, step: str, answer: str, first_delivery: tuple[str, int] | None = None
    ) -> str | None:
        """For a turn whose only write is its session (its effects only read; it waits for a recording,
        the caller's keys or nothing): the session and the answer given to `step` stored in one round
        trip, without taking the call's lock. The answer to send: `answer`, or the one `step` was given
        before (a retry gets the same answer). None while another request of the call holds the lock:
        nothing is stored, and the turn is to be taken (`turn`) as one that commits. With
        `first_delivery` (a key and its life in seconds: a webhook's replay check), the key is set
        first, in the same round trip, and Replayed raised when it was set already, nothing stored."""
        values: list[str | int] = [json.dumps(session.to_dict(), ensure_ascii=False), f"answer:{step}", answer, TTL_S]
        reply: list[bytes] = self._commands.run(
            KEEP_UNLESS_ANSWERED, *with_first_delivery([self.key, self.lock_key], values, first_delivery)
        )
        if reply[0] == b"replayed":
            raise Replayed()
        if reply[0] == b"busy":
            return None
        return answer if reply[0] == b"kept" else reply[1].decode()

    def _take(self, token: str, step: str, first_delivery: tuple[str, int] | None) -> list[bytes | None] | None:
        values: list[str | int] = [token, LOCK_TTL_S * 1000, f"answer:{step}"]
        found: list[bytes | None] | bytes | None = self._commands.run(
            TAKE_AND_READ, *with_first_delivery([self.key, self.lock_key], values, first_delivery)
        )
        if found == b"replayed":
            raise Replayed()
        assert not isinstance(found, bytes)
        return found


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


def session_of(raw: bytes | str | None) -> Session | None:
    """The session stored as `raw` (None for none)."""
    return Session.from_dict(json.loads(raw)) if raw else None
