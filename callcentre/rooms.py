"""The room of a caller: where an agent talks with them, on both platforms (a conference room
named for the caller's call), and what the agent does to it from the console: hold the caller
(they hear music), mute themselves, each through the platform's REST API (`CallControl`) and
audited. `room_of` is the one name of a caller's room: a softphone, a supervisor's listen or
whisper, a recording join or name the same room through it."""

from __future__ import annotations

import logging
from enum import StrEnum

import redis
import sqlalchemy as sa

from storage import callqueue, rooms
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.rooms import Room
from telephony.port import CallControl, GatewayError

log = logging.getLogger(__name__)


def room_of(call_sid: str) -> str:
    """The conference room of the caller whose call is `call_sid`: named by that call's id."""
    return call_sid


def held_by(connection: redis.Redis, user_id: int, call_sid: str) -> Room | None:
    """The caller's room, when this agent is the one in it; None otherwise (the server refuses)."""
    room = rooms.of(connection, room_of(call_sid))
    return room if room is not None and room.agent == user_id else None


def hold(
    connection: redis.Redis, engine: sa.Engine, control: CallControl, room: Room, on: bool, music_url: str
) -> None:
    """The caller on hold (music, unheard) or back; GatewayError when the platform refused."""
    member = rooms.member(connection, room.name, room.caller) or room.caller
    control.hold_member(room.name, member, on, music_url)
    rooms.flag(connection, room.name, "held", on)
    _audit(engine, AuditAction.CALL_HELD if on else AuditAction.CALL_RESUMED, room)


def mute(connection: redis.Redis, engine: sa.Engine, control: CallControl, room: Room, on: bool) -> None:
    """The agent muted (the caller no longer hears them) or heard again; GatewayError when refused."""
    member = rooms.member(connection, room.name, room.agent_leg) or room.agent_leg
    control.mute_member(room.name, member, on)
    rooms.flag(connection, room.name, "muted", on)
    _audit(engine, AuditAction.AGENT_MUTED if on else AuditAction.AGENT_UNMUTED, room)


class TransferTo(StrEnum):
    """Where an agent sends their caller."""

    AGENT = "agent"  # back in the queue, offered first to another agent
    SUPERVISORS = "supervisors"  # the same, to the supervisors signed in
    MENU = "menu"  # back to the phone menu, in their language


def transfer_to_queue(
    connection: redis.Redis,
    engine: sa.Engine,
    control: CallControl,
    room: Room,
    sent: callqueue.Sent,
    to: TransferTo,
    url: str,
) -> None:
    """The caller leaves the room for the queue (`url` answers it), where `sent.agents` are offered
    them first; the agent's leg ends with the room (wrap-up). GatewayError: nothing changed."""
    callqueue.sent_to(connection, room.caller, sent)
    try:
        control.redirect_call(room.caller, url)
    except GatewayError:
        callqueue.unsent(connection, room.caller)
        raise
    rooms.closed(connection, room.name)
    _audit(engine, AuditAction.CALL_TRANSFERRED, room, to=to.value, agents=list(sent.agents))


def transfer_to_menu(connection: redis.Redis, engine: sa.Engine, control: CallControl, room: Room, url: str) -> None:
    """The caller leaves the room for the start of the phone menu (`url`); GatewayError: nothing changed."""
    control.redirect_call(room.caller, url)
    rooms.closed(connection, room.name)
    _audit(engine, AuditAction.CALL_TRANSFERRED, room, to=TransferTo.MENU.value)


def refused(engine: sa.Engine, room: Room, action: str, error: GatewayError) -> None:
    """The platform refused a hold, mute or transfer: on the audit trail with why."""
    _audit(engine, AuditAction.CALL_CONTROL_FAILED, room, control=action, error=str(error)[:200])


def _audit(engine: sa.Engine, action: AuditAction, room: Room, **detail: object) -> None:
    try:
        with session_scope(engine) as db:
            record(
                db,
                action,
                actor=f"user:{room.agent}",
                entity="call",
                entity_id=None,
                detail={"call_sid": room.caller, **detail},
            )
    except sa.exc.SQLAlchemyError:
        log.exception("could not audit %s on call %s", action, room.caller)


__all__ = ["GatewayError", "Room", "held_by", "hold", "mute", "room_of"]
