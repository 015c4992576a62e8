"""Who is waiting for an agent: the helpline queue as the console sees it, kept in Redis from
Twilio's waitUrl requests (each waiting caller's is fetched again every half minute or so), with
what the caller keyed before asking for an agent, and which agent's desk phone rings for whom."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import redis

# A call's id: Twilio's CallSid, or Plivo's CallUUID.
CALL_SID = re.compile(r"^(CA[0-9a-fA-F]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
KEY = "sewamitra:helpline-queue"
CLAIMS = KEY + ":claims"  # call_sid → the agent whose desk phone rings for that caller, and since when
CLAIM_LOCK = KEY + ":claim"
CALL = "sewamitra:helpline-call:"  # + call_sid: what the console knows of a call, after the queue too
ON_THE_LINE = KEY + ":agent:"
BRIDGES = KEY + ":bridges"  # call_sid → the agent waiting for that caller in their conference room
SENT = KEY + ":sent"  # call_sid → the agents a transfer sent the caller to (offered to them first), and by whom
CALL_TTL_S = 4 * 3600
ON_THE_LINE_TTL_S = 3600
STALE_S = 120  # a caller whose waitUrl has not been fetched for this long has left the queue
CLAIM_TTL_S = 45  # a desk phone not answered by then (it rings 20 s) frees the caller for another agent


@dataclass(frozen=True)
class Call:
    """A caller who asked for an agent: their number (None when withheld), language, and what they
    keyed before (the service and PIN code, when they got that far)."""

    call_sid: str
    phone: str | None
    language: str
    service: str = ""
    pincode: str = ""
    priority: str = ""  # why they are served first, comma-separated (callcentre.priority); "" if not


@dataclass(frozen=True)
class Waiting:
    call: Call
    position: int
    entered_at: float  # epoch seconds: when the caller joined the queue
    seen_at: float
    claimed_by: int | None = None  # the console user whose desk phone is ringing for them

    @property
    def call_sid(self) -> str:
        return self.call.call_sid

    @property
    def phone(self) -> str | None:
        return self.call.phone

    @property
    def language(self) -> str:
        return self.call.language

    def wait_s(self, now: float) -> int:
        return max(0, int(now - self.entered_at))


def note_waiting(connection: redis.Redis, call: Call, position: int, queue_time_s: int, now: float) -> None:
    """A waitUrl request: the caller is still in the queue, at `position`, for `queue_time_s`."""
    entry = {"call": asdict(call), "position": position, "entered_at": now - queue_time_s, "seen_at": now}
    with connection.pipeline() as pipe:
        pipe.hset(KEY, call.call_sid, json.dumps(entry))
        pipe.set(CALL + call.call_sid, json.dumps(asdict(call)), ex=CALL_TTL_S)
        pipe.execute()


def note_waiting_here(connection: redis.Redis, call: Call, now: float) -> int:
    """A round of hold music in a queue the helpline keeps itself (no platform counts for it): the
    caller's place is theirs since they first came, behind whoever came before; returns it."""
    with connection.pipeline() as pipe:
        pipe.hget(KEY, call.call_sid)
        pipe.hgetall(KEY)
        mine, everyone = pipe.execute()
    entered = float(json.loads(mine)["entered_at"]) if mine else now
    ahead = sum(
        1 for sid, raw in everyone.items() if sid.decode() != call.call_sid and _ahead(json.loads(raw), entered, now)
    )
    note_waiting(connection, call, ahead + 1, int(now - entered), now)
    return ahead + 1


def _ahead(entry: dict[str, Any], entered: float, now: float) -> bool:
    """Whether a waiting caller came before one who came at `entered` (and has not gone stale)."""
    return float(entry["entered_at"]) <= entered and now - float(entry["seen_at"]) <= STALE_S


def wait_of(connection: redis.Redis, call_sid: str, now: float) -> int | None:
    """Seconds the caller has been in the queue; None when they are not in it."""
    raw = connection.hget(KEY, call_sid)
    return max(0, int(now - float(json.loads(raw)["entered_at"]))) if raw else None


def entry(call_sid: str) -> tuple[str, str, str]:
    """The command reading the caller's entry in the queue (nil when they are not in it), to send with others."""
    return ("HGET", KEY, call_sid)


def call(connection: redis.Redis, call_sid: str) -> Call | None:
    """What the console knows of a call that reached the agent queue (for four hours)."""
    raw = connection.get(CALL + call_sid)
    return Call(**json.loads(raw)) if raw else None


def left(connection: redis.Redis, call_sid: str) -> None:
    with connection.pipeline() as pipe:
        pipe.hdel(KEY, call_sid)
        pipe.hdel(CLAIMS, call_sid)
        pipe.hdel(BRIDGES, call_sid)
        pipe.hdel(SENT, call_sid)
        pipe.execute()


@dataclass(frozen=True)
class Sent:
    """A caller an agent transferred: back in the queue, offered first to `agents` (another agent, or
    the supervisors), with who sent them."""

    agents: tuple[int, ...]
    by: int
    by_name: str = ""


def sent_to(connection: redis.Redis, call_sid: str, sent: Sent) -> None:
    connection.hset(SENT, call_sid, json.dumps({"agents": list(sent.agents), "by": sent.by, "by_name": sent.by_name}))


def unsent(connection: redis.Redis, call_sid: str) -> None:
    connection.hdel(SENT, call_sid)


def sent(connection: redis.Redis) -> dict[str, Sent]:
    """Every transferred caller not yet put through again."""
    found: dict[Any, Any] = connection.hgetall(SENT)
    return {_text(sid): _sent(json.loads(raw)) for sid, raw in found.items()}


def sent_one(connection: redis.Redis, call_sid: str) -> Sent | None:
    raw = connection.hget(SENT, call_sid)
    return _sent(json.loads(raw)) if raw else None


def _sent(entry: dict[str, Any]) -> Sent:
    return Sent(tuple(int(a) for a in entry["agents"]), int(entry["by"]), str(entry.get("by_name", ""))[:80])


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def claimed_by(connection: redis.Redis, user_id: int, now: float) -> str | None:
    """The caller whose claim by `user_id` is still live (their desk phone rang for them)."""
    claims: dict[Any, Any] = connection.hgetall(CLAIMS)
    for sid, raw in claims.items():
        if _claimant(raw, now) == user_id:
            return sid.decode() if isinstance(sid, bytes) else str(sid)
    return None


def wait_for_agent(connection: redis.Redis, user_id: int, call_sid: str) -> None:
    """The agent is in the caller's room: the caller is moved there by REST, or, should that fail,
    joins them at their next round of hold music."""
    connection.hset(BRIDGES, call_sid, str(user_id))


def agent_waiting(connection: redis.Redis, call_sid: str) -> int | None:
    """The agent waiting in this caller's conference room, if any."""
    raw = connection.hget(BRIDGES, call_sid)
    return int(raw) if raw else None


def waiting(connection: redis.Redis, now: float) -> list[Waiting]:
    """Everyone still waiting, longest wait first, with live claims; stale entries are dropped."""
    with connection.pipeline() as pipe:
        pipe.hgetall(KEY)
        pipe.hgetall(CLAIMS)
        entries, claims = pipe.execute()
    found = [_waiting(json.loads(raw), _claimant(claims.get(sid), now)) for sid, raw in entries.items()]
    stale = [w.call_sid for w in found if now - w.seen_at > STALE_S]
    if stale:
        left_all(connection, stale)
    return sorted((w for w in found if w.call_sid not in stale), key=lambda w: (w.entered_at, w.position))


def left_all(connection: redis.Redis, call_sids: list[str]) -> None:
    with connection.pipeline() as pipe:
        pipe.hdel(KEY, *call_sids)
        pipe.hdel(CLAIMS, *call_sids)
        pipe.hdel(BRIDGES, *call_sids)
        pipe.hdel(SENT, *call_sids)
        pipe.execute()


def claim_next(connection: redis.Redis, user_id: int, now: float) -> Waiting | None:
    """The longest-waiting caller no agent is being rung for, now claimed by `user_id`: the caller
    whose room the agent's desk phone joins (`callcentre.rooms.room_of`)."""
    with connection.lock(CLAIM_LOCK, timeout=5, blocking_timeout=5):
        for entry in waiting(connection, now):
            if entry.claimed_by is None:
                return claim(connection, user_id, entry, now)
    return None


def claim(connection: redis.Redis, user_id: int, entry: Waiting, now: float) -> Waiting:
    """`user_id`'s desk phone rings for this caller; the caller of CLAIM_LOCK's holder only."""
    connection.hset(CLAIMS, entry.call_sid, json.dumps({"user": user_id, "at": now}))
    return Waiting(entry.call, entry.position, entry.entered_at, entry.seen_at, user_id)


def unclaim(connection: redis.Redis, call_sid: str) -> None:
    """The desk phone rang for nothing: the caller is free for another agent at once."""
    connection.hdel(CLAIMS, call_sid)


def bridged(connection: redis.Redis, user_id: int, call_sid: str) -> None:
    """The caller is in this agent's room: off the queue, and on the agent's line."""
    with connection.pipeline() as pipe:
        pipe.hdel(KEY, call_sid)
        pipe.hdel(CLAIMS, call_sid)
        pipe.hdel(BRIDGES, call_sid)
        pipe.hdel(SENT, call_sid)
        pipe.set(ON_THE_LINE + str(user_id), call_sid, ex=ON_THE_LINE_TTL_S)
        pipe.execute()


def on_the_line(connection: redis.Redis, user_id: int) -> str | None:
    """The CallSid of the caller the agent was last bridged with (for an hour)."""
    raw = connection.get(ON_THE_LINE + str(user_id))
    return raw.decode() if isinstance(raw, bytes) else raw


def _waiting(entry: dict[str, Any], claimed_by: int | None) -> Waiting:
    return Waiting(
        Call(**entry["call"]), int(entry["position"]), float(entry["entered_at"]), float(entry["seen_at"]), claimed_by
    )


def _claimant(raw: bytes | None, now: float) -> int | None:
    """Whose desk phone rings for this caller, unless it has rung too long to be answered now."""
    if not raw:
        return None
    claim = json.loads(raw)
    return int(claim["user"]) if now - float(claim["at"]) < CLAIM_TTL_S else None


BROWSER_LEG = "sewamitra:browser-leg:"  # + the platform's id of a browser's call: the agent and their caller


def browser_leg(connection: redis.Redis, leg_id: str, user_id: int, call_sid: str) -> None:
    """An agent's browser called in for `call_sid`: kept for the end of that leg to end their call."""
    connection.set(BROWSER_LEG + leg_id, json.dumps({"user": user_id, "call": call_sid}), ex=CALL_TTL_S)


def browser_leg_of(connection: redis.Redis, leg_id: str) -> tuple[int, str] | None:
    """The agent and the caller of a browser's call, while it is known."""
    raw = connection.get(BROWSER_LEG + leg_id)
    if not raw:
        return None
    found = json.loads(raw)
    return int(found["user"]), str(found["call"])
