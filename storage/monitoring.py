"""Supervisors' monitoring sessions of agents' calls, and the few facts of a live call the wall of
agents shows, in Redis: a session's supervisor, agent, caller and mode (listen, whisper, barge), the
supervisor's phone leg once it is in the room; when a caller joined the queue and when they were put
through. The rules are `callcentre.monitoring`'s; every session's start, switch and end is audited
there, so what stays here is only what a live call needs."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

import redis

SESSION = "sewamitra:monitor:"  # + session id: one monitoring session
LEG = "sewamitra:monitor-leg:"  # + the supervisor's call id: their session
OF_SUPERVISOR = "sewamitra:monitor-of:"  # + supervisor id: their session now (one at a time)
LIVE_CALL = "sewamitra:live-call:"  # + caller's call id: entered (the queue), answered (put through)
TTL_S = 4 * 3600  # a call centre's longest call, and then some
SESSION_ID_CHARS = 16


class Mode(StrEnum):
    LISTEN = "listen"  # the supervisor hears both, nobody hears them
    WHISPER = "whisper"  # coach: only the agent hears them
    BARGE = "barge"  # all three talk


@dataclass(frozen=True)
class Session:
    """One supervisor on one agent's call; `leg` is the supervisor's phone once in the room."""

    session_id: str
    supervisor_id: int
    agent_id: int
    call_sid: str  # the caller's call: their room
    mode: Mode
    requested_at: float
    leg: str = ""
    joined_at: float = 0.0

    @property
    def in_the_room(self) -> bool:
        return bool(self.leg)


@dataclass(frozen=True)
class LiveCall:
    """When a caller joined the queue and when they were put through (0 until then)."""

    entered_at: float = 0.0
    answered_at: float = 0.0

    def waited_s(self, now: float) -> int:
        if not self.entered_at:
            return 0
        return max(0, int((self.answered_at or now) - self.entered_at))

    def talked_s(self, now: float) -> int:
        return max(0, int(now - self.answered_at)) if self.answered_at else 0


def new_session_id() -> str:
    return secrets.token_hex(SESSION_ID_CHARS // 2)


def save(connection: redis.Redis, session: Session) -> None:
    with connection.pipeline() as pipe:
        pipe.set(SESSION + session.session_id, json.dumps(asdict(session)), ex=TTL_S)
        pipe.set(OF_SUPERVISOR + str(session.supervisor_id), session.session_id, ex=TTL_S)
        if session.leg:
            pipe.set(LEG + session.leg, session.session_id, ex=TTL_S)
        pipe.execute()


def load(connection: redis.Redis, session_id: str) -> Session | None:
    if not (session_id.isascii() and session_id.isalnum() and len(session_id) == SESSION_ID_CHARS):
        return None
    raw = connection.get(SESSION + session_id)
    if not raw:
        return None
    fields = json.loads(raw)
    return Session(**(fields | {"mode": Mode(fields["mode"])}))


def of_leg(connection: redis.Redis, leg: str) -> Session | None:
    """The session whose supervisor's phone is this call."""
    raw = connection.get(LEG + leg)
    return load(connection, raw.decode() if isinstance(raw, bytes) else raw) if raw else None


def of_supervisor(connection: redis.Redis, supervisor_id: int) -> Session | None:
    """The supervisor's session now, if any."""
    raw = connection.get(OF_SUPERVISOR + str(supervisor_id))
    return load(connection, raw.decode() if isinstance(raw, bytes) else raw) if raw else None


def switched(connection: redis.Redis, session: Session, mode: Mode) -> Session:
    changed = replace(session, mode=mode)
    save(connection, changed)
    return changed


def forget(connection: redis.Redis, session: Session) -> None:
    current = connection.get(OF_SUPERVISOR + str(session.supervisor_id))
    with connection.pipeline() as pipe:
        pipe.delete(SESSION + session.session_id)
        if current in (session.session_id, session.session_id.encode()):  # not a newer session of theirs
            pipe.delete(OF_SUPERVISOR + str(session.supervisor_id))
        if session.leg:
            pipe.delete(LEG + session.leg)
        pipe.execute()


def note_entered(connection: redis.Redis, call_sid: str, entered_at: float) -> None:
    """The caller an agent takes joined the queue at `entered_at` (the queue forgets them once put through)."""
    connection.hset(LIVE_CALL + call_sid, "entered_at", repr(entered_at))
    connection.expire(LIVE_CALL + call_sid, TTL_S)


def note_answered(connection: redis.Redis, call_sid: str, answered_at: float) -> None:
    """The caller is put through to an agent: the talk starts (a retried bridge keeps the first time)."""
    connection.hsetnx(LIVE_CALL + call_sid, "answered_at", repr(answered_at))
    connection.expire(LIVE_CALL + call_sid, TTL_S)


def live_calls(connection: redis.Redis, call_sids: list[str]) -> dict[str, LiveCall]:
    """Each call's times, in one round trip."""
    with connection.pipeline() as pipe:
        for call_sid in call_sids:
            pipe.hgetall(LIVE_CALL + call_sid)
        found = pipe.execute()
    return {call_sid: _live(raw) for call_sid, raw in zip(call_sids, found, strict=True)}


def _live(raw: Mapping[bytes | str, bytes | str]) -> LiveCall:
    fields = {_text(key): _text(value) for key, value in raw.items()}
    return LiveCall(_float(fields.get("entered_at")), _float(fields.get("answered_at")))


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _float(raw: str | None) -> float:
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0
