"""Whether an agent's call is recorded now or paused by the agent, in Redis beside the agents' states:
the caller's screen shows it, and a second click (two tabs, a double click) finds it done already.
Written by `callcentre.recording` only."""

from __future__ import annotations

import redis

PAUSED_KEY = "agentcall:recording_paused:"  # + the caller's call id: the agent who paused it
KEEP_S = 6 * 3600  # longer than any call; a key left behind by a call that ended goes by itself


def mark_paused(connection: redis.Redis, call_sid: str, user_id: int) -> bool:
    """Paused now; False when it was paused already."""
    return bool(connection.set(PAUSED_KEY + call_sid, str(user_id), nx=True, ex=KEEP_S))


def mark_recording(connection: redis.Redis, call_sid: str) -> bool:
    """Recorded again; False when it was not paused."""
    return bool(connection.delete(PAUSED_KEY + call_sid))


def is_paused(connection: redis.Redis, call_sid: str) -> bool:
    return bool(connection.exists(PAUSED_KEY + call_sid))
