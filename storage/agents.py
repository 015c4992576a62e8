"""Agents' live state, in Redis beside the queue of callers (`storage.callqueue`): ready, on a call,
in wrap-up or paused with a reason; the caller offered to a ready agent, and since when. The rules
of who may go where are `callcentre.desk`'s, which writes here under the queue's claim lock; every
change is audited there, so reports count time in state from the audit trail, not from here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import redis

from storage import callqueue

KEY = "sewamitra:agent:"  # + user id: one agent's hash
KNOWN = "sewamitra:agents"  # the ids of agents with a hash
TTL_S = 24 * 3600  # an agent not seen for a day starts again paused, as at their first sign-in
LOCK_TIMEOUT_S = 5


class AgentState(StrEnum):
    READY = "ready"
    ON_CALL = "on_call"  # holds a caller: their desk phone rings for them, or they talk
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


@dataclass(frozen=True)
class AgentStatus:
    """One agent's state; a new agent is paused with no reason (not ready yet)."""

    user_id: int
    state: AgentState = AgentState.PAUSED
    since: float = 0.0  # epoch seconds: in this state since
    reason: str = ""  # a pause's reason code
    call_sid: str = ""  # the caller held (ON_CALL), or last talked to (WRAP_UP)
    bridged: bool = False  # the held caller is on the line with them
    offer: str = ""  # a caller offered to them (READY), ringing on the console
    offer_at: float = 0.0
    wrap_until: float = 0.0
    languages: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    seen_at: float = 0.0  # their console last asked for its state bar

    def in_state_s(self, now: float) -> int:
        return max(0, int(now - self.since)) if self.since else 0

    def wrap_left_s(self, now: float) -> int:
        return max(0, int(self.wrap_until - now + 0.999)) if self.state is AgentState.WRAP_UP else 0

    def holds_a_caller(self) -> bool:
        return self.state is AgentState.ON_CALL


@contextmanager
def locked(connection: redis.Redis) -> Iterator[None]:
    """The queue's claim lock: offers, claims and agents' states change under it, one writer at a time.
    Not had within its timeout, it raises a redis.RedisError (LockError) as Redis being away does."""
    with connection.lock(callqueue.CLAIM_LOCK, timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S):
        yield


def status(connection: redis.Redis, user_id: int) -> AgentStatus:
    return _status(user_id, connection.hgetall(KEY + str(user_id)))


def statuses(connection: redis.Redis) -> list[AgentStatus]:
    """Every agent with a state (ids that lost theirs to the TTL are forgotten here too)."""
    ids = sorted(int(raw) for raw in connection.smembers(KNOWN))
    with connection.pipeline() as pipe:
        for user_id in ids:
            pipe.hgetall(KEY + str(user_id))
        found = pipe.execute()
    gone = [user_id for user_id, raw in zip(ids, found, strict=True) if not raw]
    if gone:
        connection.srem(KNOWN, *gone)
    return [_status(user_id, raw) for user_id, raw in zip(ids, found, strict=True) if raw]


def save(connection: redis.Redis, agent: AgentStatus) -> None:
    fields = {
        "state": agent.state.value,
        "since": repr(agent.since),
        "reason": agent.reason,
        "call_sid": agent.call_sid,
        "bridged": "1" if agent.bridged else "",
        "offer": agent.offer,
        "offer_at": repr(agent.offer_at),
        "wrap_until": repr(agent.wrap_until),
        "languages": ",".join(agent.languages),
        "services": ",".join(agent.services),
        "seen_at": repr(agent.seen_at),
    }
    with connection.pipeline() as pipe:
        pipe.hset(KEY + str(agent.user_id), mapping=fields)  # type: ignore[arg-type]
        pipe.expire(KEY + str(agent.user_id), TTL_S)
        pipe.sadd(KNOWN, agent.user_id)
        pipe.execute()


def seen(connection: redis.Redis, user_id: int, now: float) -> None:
    """Their console is open (it asks for the state bar every few seconds): offers may ring there.
    One field of an agent who has a state (one who never was ready is no agent yet), written without
    the lock: it must not write back the rest from a read another change has overtaken."""
    key = KEY + str(user_id)
    if connection.exists(key):
        connection.hset(key, "seen_at", repr(now))


def counts(connection: redis.Redis) -> dict[AgentState, int]:
    """How many agents are in each state now (for the dashboard: agents ready, busy, paused)."""
    found = dict.fromkeys(AgentState, 0)
    for agent in statuses(connection):
        found[agent.state] += 1
    return found


def holding(connection: redis.Redis, call_sid: str) -> AgentStatus | None:
    """The agent holding this caller (on a call with them, or their desk phone ringing for them)."""
    return next((a for a in statuses(connection) if a.holds_a_caller() and a.call_sid == call_sid), None)


def _status(user_id: int, raw: Mapping[bytes | str, bytes | str]) -> AgentStatus:
    if not raw:
        return AgentStatus(user_id)
    field = {_text(key): _text(value) for key, value in raw.items()}
    try:
        state = AgentState(field.get("state", ""))
    except ValueError:
        return AgentStatus(user_id)
    return AgentStatus(
        user_id,
        state,
        _float(field.get("since")),
        field.get("reason", ""),
        field.get("call_sid", ""),
        field.get("bridged") == "1",
        field.get("offer", ""),
        _float(field.get("offer_at")),
        _float(field.get("wrap_until")),
        tuple(code for code in field.get("languages", "").split(",") if code),
        tuple(code for code in field.get("services", "").split(",") if code),
        _float(field.get("seen_at")),
    )


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _float(raw: str | None) -> float:
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0
