"""An agent's call recorded in the caller's conference room: each recording the platform reports
kept once (`kept`), and paused and resumed by the agent who holds the call, for what must not be
kept (a card number, a personal matter). Twilio pauses and resumes its one recording; Plivo stops
and starts the room's recording, so a call paused once has two.

Only the agent on the call with the caller (bridged) may pause or resume it; every pause, resume
and refusal is on the audit trail."""

from __future__ import annotations

import logging
from enum import StrEnum

import redis
import sqlalchemy as sa
from sqlmodel import Session, select

from callcentre.rooms import room_of
from storage import agents, roomrecording
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import Recording, RecordingKind, User
from telephony.call import Recording as Made
from telephony.port import CallControl, GatewayError

log = logging.getLogger(__name__)
MAX_SECONDS = 24 * 3600
CALLBACK_PATH = "/agent/recorded"  # under the platform's voice webhooks (/<platform>/voice)


def report_query(call_sid: str, user_id: int) -> str:
    """The query string naming the agent's call with this caller, on the webhook the platform posts a
    recording of it to (`CALLBACK_PATH`, or Plivo's room callback)."""
    return f"agent={user_id}&call={call_sid}"


def callback_path(call_sid: str, user_id: int) -> str:
    """Under the voice webhooks: where the platform posts a recording of this agent's call with this caller."""
    return f"{CALLBACK_PATH}?{report_query(call_sid, user_id)}"


class Refused(StrEnum):
    """Why a pause or resume was not done, in words the console translates."""

    NOT_ON_THE_CALL = "not_on_the_call"  # the agent does not hold this caller (now)
    PAUSED_ALREADY = "paused_already"
    NOT_PAUSED = "not_paused"
    PLATFORM = "platform"  # the platform could not do it now


def kept(session: Session, call_sid: str, agent_id: int, platform: str, made: Made) -> Recording | None:
    """A recording of the agent's call, as the platform reported it: kept once (a retry of the
    callback finds it), None when the report names no recording or no agent of ours."""
    if not (made.recording_id and made.url) or len(made.recording_id) > 64 or len(made.url) > 500:
        return None
    if session.get(User, agent_id) is None:
        return None
    found = session.exec(
        select(Recording).where(
            Recording.kind == RecordingKind.AGENT_CALL,
            Recording.platform == platform,
            Recording.recording_id == made.recording_id,
        )
    ).first()
    if found is not None:
        return found
    seconds = made.duration if made.duration.isascii() and made.duration.isdigit() else "0"
    recording = Recording(
        call_sid=call_sid[:40],
        platform=platform,
        recording_id=made.recording_id,
        url=made.url,
        duration_s=min(int(seconds[:6]), MAX_SECONDS),
        kind=RecordingKind.AGENT_CALL,
        agent_id=agent_id,
    )
    session.add(recording)
    session.flush()
    return recording


def holds(connection: redis.Redis, user_id: int, call_sid: str) -> bool:
    """The agent is on the line with this caller now."""
    status = agents.status(connection, user_id)
    return status.holds_a_caller() and status.bridged and status.call_sid == call_sid


def pause(
    connection: redis.Redis, engine: sa.Engine, control: CallControl, user_id: int, call_sid: str
) -> Refused | None:
    """The agent pauses the recording of their call; refused on a call they do not hold."""
    refused = _check(connection, user_id, call_sid)
    if refused is None and not roomrecording.mark_paused(connection, call_sid, user_id):
        refused = Refused.PAUSED_ALREADY
    if refused is None:
        try:
            control.pause_recording(room_of(call_sid))
        except GatewayError as error:
            log.warning("could not pause the recording of %s: %s", call_sid, error)
            roomrecording.mark_recording(connection, call_sid)
            refused = Refused.PLATFORM
    _audit(engine, AuditAction.AGENT_RECORDING_PAUSED, user_id, call_sid, refused)
    return refused


def resume(
    connection: redis.Redis,
    engine: sa.Engine,
    control: CallControl,
    user_id: int,
    call_sid: str,
    recording_callback: str,
) -> Refused | None:
    """The agent records their call again; refused on a call they do not hold, or not paused."""
    refused = _check(connection, user_id, call_sid)
    if refused is None and not roomrecording.mark_recording(connection, call_sid):
        refused = Refused.NOT_PAUSED
    if refused is None:
        try:
            control.resume_recording(room_of(call_sid), recording_callback=recording_callback)
        except GatewayError as error:
            log.warning("could not resume the recording of %s: %s", call_sid, error)
            roomrecording.mark_paused(connection, call_sid, user_id)
            refused = Refused.PLATFORM
    _audit(engine, AuditAction.AGENT_RECORDING_RESUMED, user_id, call_sid, refused)
    return refused


def is_paused(connection: redis.Redis, call_sid: str) -> bool:
    return roomrecording.is_paused(connection, call_sid)


def room_opened(connection: redis.Redis, call_sid: str) -> None:
    """An agent's leg opens the caller's room, recorded from its start (a caller put through to a
    second agent too): not paused, whatever an earlier leg left."""
    roomrecording.mark_recording(connection, call_sid)


def _check(connection: redis.Redis, user_id: int, call_sid: str) -> Refused | None:
    return None if holds(connection, user_id, call_sid) else Refused.NOT_ON_THE_CALL


def _audit(engine: sa.Engine, action: AuditAction, user_id: int, call_sid: str, refused: Refused | None) -> None:
    """A pause or resume done, or refused (the action asked for, and why not)."""
    with session_scope(engine) as db:
        record(
            db,
            AuditAction.AGENT_RECORDING_REFUSED if refused else action,
            actor=f"user:{user_id}",
            entity="console_user",
            entity_id=user_id,
            reason=refused.value if refused else None,
            detail={"call_sid": call_sid, "asked": action.value},
        )
