"""A supervisor on an agent's live call: listen (nobody hears them), whisper (coach: only the agent
hears them) or barge (all three talk). The helpline rings the supervisor's phone; a key press puts
them in the caller's room (`callcentre.rooms.room_of`) in their mode, and the console switches the
mode while they are there through the platform's REST (`CallControl.monitor_member`). Whom a whisper
coaches is the agent's leg, as the room's state keeps it (`storage.rooms`).

Every session is audited: asked (who, which agent and caller, the mode), joined, each switch, the
end, and each refusal (a call that is not live, a mode the platform cannot do)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

import redis
import sqlalchemy as sa

from callcentre.rooms import room_of
from storage import agents, monitoring, rooms
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.monitoring import Mode, Session
from telephony.port import CallControl, GatewayError

log = logging.getLogger(__name__)


class Refusal(StrEnum):
    """Why a monitoring session or a switch is refused: the console says so."""

    NOT_LIVE = "not_live"  # the agent is not talking with a caller now
    NO_COACHING = "no_coaching"  # whisper, on a platform whose rooms cannot coach
    GONE = "gone"  # the session is over, or another supervisor's
    NOT_IN_ROOM = "not_in_room"  # the supervisor's phone has not joined the room yet
    NO_AGENT_LEG = "no_agent_leg"  # whisper to an agent whose own leg the helpline does not know
    PLATFORM = "platform"  # the platform refused the change


def participant(mode: Mode, agent_leg: str) -> tuple[bool, str]:
    """How the supervisor's leg is in the room: (muted, the call id of whom they coach, or ""). A
    whisper to an agent whose leg is not known stays muted: never heard by the caller by mistake."""
    if mode is Mode.LISTEN or (mode is Mode.WHISPER and not agent_leg):
        return True, ""
    if mode is Mode.WHISPER:
        return False, agent_leg
    return False, ""


def agent_leg(connection: redis.Redis, session: Session) -> str:
    """The call id of the agent's own leg in the caller's room (whom a whisper coaches), else ""."""
    room = rooms.of(connection, room_of(session.call_sid))
    return room.agent_leg if room is not None and room.agent == session.agent_id else ""


def live_call(connection: redis.Redis, agent_id: int) -> str | None:
    """The caller the agent is talking with now (put through, not only rung for), else None."""
    agent = agents.status(connection, agent_id)
    return agent.call_sid if agent.holds_a_caller() and agent.bridged and agent.call_sid else None


def start(
    connection: redis.Redis,
    engine: sa.Engine,
    supervisor_id: int,
    agent_id: int,
    mode: Mode,
    *,
    coaching: bool,
    now: datetime,
) -> tuple[Session | None, Refusal | None]:
    """A supervisor asks to monitor an agent's call in `mode`: the session, before their phone rings."""
    call_sid = live_call(connection, agent_id)
    refusal = Refusal.NOT_LIVE if call_sid is None else _cannot(mode, coaching)
    if refusal is not None or call_sid is None:
        _audit(engine, AuditAction.MONITOR_REFUSED, supervisor_id, agent_id, {"mode": mode.value}, reason=refusal)
        return None, refusal
    session = Session(monitoring.new_session_id(), supervisor_id, agent_id, call_sid, mode, now.timestamp())
    monitoring.save(connection, session)
    _audit(engine, AuditAction.MONITOR_ASKED, supervisor_id, agent_id, _about(session))
    return session, None


def joined(connection: redis.Redis, engine: sa.Engine, session_id: str, leg: str, now: datetime) -> Session | None:
    """The supervisor pressed the key on their phone: in the room, if the call is still live."""
    session = monitoring.load(connection, session_id)
    if session is None or live_call(connection, session.agent_id) != session.call_sid:
        return None
    if session.in_the_room:
        return session if session.leg == leg else None  # a platform's retry, or another phone: not twice
    session = replace(session, leg=leg, joined_at=now.timestamp())
    monitoring.save(connection, session)
    _audit(engine, AuditAction.MONITOR_JOINED, session.supervisor_id, session.agent_id, _about(session))
    return session


def switch(
    connection: redis.Redis,
    engine: sa.Engine,
    control: CallControl,
    session_id: str,
    supervisor_id: int,
    mode: Mode,
    *,
    coaching: bool,
) -> Refusal | None:
    """Listen, whisper or barge from now on: the supervisor's leg changed in the room by REST."""
    session = monitoring.load(connection, session_id)
    if session is None or session.supervisor_id != supervisor_id:
        return Refusal.GONE
    refusal = _cannot(mode, coaching)
    if refusal is None and not session.in_the_room:
        refusal = Refusal.NOT_IN_ROOM
    if refusal is None and live_call(connection, session.agent_id) != session.call_sid:
        refusal = Refusal.NOT_LIVE
    coached = agent_leg(connection, session)
    if refusal is None and mode is Mode.WHISPER and not coached:
        refusal = Refusal.NO_AGENT_LEG
    if refusal is None:
        muted, coach = participant(mode, coached)
        room = room_of(session.call_sid)
        member = rooms.member(connection, room, session.leg) or session.leg  # Plivo's member id, Twilio's CallSid
        try:
            control.monitor_member(room, member, muted=muted, coach=coach)
        except GatewayError:
            log.warning("could not switch monitoring session %s to %s", session_id, mode, exc_info=True)
            refusal = Refusal.PLATFORM
    if refusal is not None:
        _audit(
            engine, AuditAction.MONITOR_REFUSED, supervisor_id, session.agent_id, {"mode": mode.value}, reason=refusal
        )
        return refusal
    monitoring.switched(connection, session, mode)
    about = _about(session) | {"mode": mode.value}
    _audit(engine, AuditAction.MONITOR_SWITCHED, supervisor_id, session.agent_id, about, old=session.mode)
    return None


def ended(connection: redis.Redis, engine: sa.Engine, session_id: str, now: datetime) -> None:
    """The supervisor's phone hung up (or never answered): the session is over."""
    session = monitoring.load(connection, session_id)
    if session is None:
        return
    monitoring.forget(connection, session)
    seconds = int(now.timestamp() - session.joined_at) if session.in_the_room else 0
    about = _about(session) | {"joined": session.in_the_room, "seconds": seconds}
    _audit(engine, AuditAction.MONITOR_ENDED, session.supervisor_id, session.agent_id, about)


def _cannot(mode: Mode, coaching: bool) -> Refusal | None:
    return Refusal.NO_COACHING if mode is Mode.WHISPER and not coaching else None


def _about(session: Session) -> dict[str, object]:
    return {"session": session.session_id, "call_sid": session.call_sid, "mode": session.mode.value}


def _audit(
    engine: sa.Engine,
    action: AuditAction,
    supervisor_id: int,
    agent_id: int,
    detail: dict[str, object],
    *,
    reason: str | None = None,
    old: Mode | None = None,
) -> None:
    """On the audit trail: the supervisor did it to the agent's call. A database away costs the trail
    this event (logged), never the supervisor their session."""
    mode = detail.get("mode")
    try:
        with session_scope(engine) as db:
            record(
                db,
                action,
                actor=f"user:{supervisor_id}",
                entity="console_user",
                entity_id=agent_id,
                from_status=old.value if old else None,
                to_status=str(mode) if mode else None,
                reason=reason,
                detail=detail,
            )
    except sa.exc.SQLAlchemyError:
        log.exception("could not audit %s of supervisor %s", action, supervisor_id)
