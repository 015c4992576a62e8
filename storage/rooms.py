"""Agents' conference rooms in Redis: the room of a caller, the agent and the agent's leg in it,
each member's id as the platform names it (Plivo's ConferenceMemberID; Twilio needs none), and
whether the caller is held and the agent muted. Written by `ivr.voice` (the room opened, members
entering) and `callcentre.rooms` (hold, mute); read by the console."""

from __future__ import annotations

from dataclasses import dataclass

import redis

ROOM = "sewamitra:room:"  # + room: a hash
ROOM_TTL_S = 4 * 3600
MEMBER = "member:"  # + a call's id: that call's member id in the room


@dataclass(frozen=True)
class Room:
    """A caller's room while their agent is in it."""

    name: str
    caller: str  # the caller's call id
    agent: int  # the console user
    agent_leg: str  # the call id of the agent's leg (their desk phone, or their browser's call)
    held: bool = False
    muted: bool = False


def opened(connection: redis.Redis, room: str, caller: str, agent: int, agent_leg: str) -> None:
    """The agent's leg goes into the caller's room (a new one: what an earlier agent set is gone)."""
    with connection.pipeline() as pipe:
        pipe.delete(ROOM + room)
        pipe.hset(ROOM + room, mapping={"caller": caller, "agent": str(agent), "agent_leg": agent_leg})
        pipe.expire(ROOM + room, ROOM_TTL_S)
        pipe.execute()


def of(connection: redis.Redis, room: str) -> Room | None:
    raw = {_text(k): _text(v) for k, v in connection.hgetall(ROOM + room).items()}
    if not raw.get("agent", "").isdigit():
        return None
    return Room(
        room, raw["caller"], int(raw["agent"]), raw["agent_leg"], raw.get("held") == "1", raw.get("muted") == "1"
    )


def note_member(connection: redis.Redis, room: str, call_id: str, member: str) -> None:
    """The platform's id of `call_id` in the room, from its room callback; only for an open room."""
    if connection.exists(ROOM + room):
        connection.hset(ROOM + room, MEMBER + call_id, member)


def member(connection: redis.Redis, room: str, call_id: str) -> str | None:
    raw = connection.hget(ROOM + room, MEMBER + call_id)
    return _text(raw) if raw else None


def flag(connection: redis.Redis, room: str, name: str, on: bool) -> None:
    """`held` or `muted`, as the platform was last told."""
    connection.hset(ROOM + room, name, "1" if on else "")


def closed(connection: redis.Redis, room: str) -> None:
    connection.delete(ROOM + room)


def closing(room: str) -> tuple[str, str]:
    """The command that closes a room (forgets its members), to send with others."""
    return ("DEL", ROOM + room)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
