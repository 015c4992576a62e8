"""CallLog rows from the platform's status callbacks: duration, the path through the menu, the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from sqlmodel import select

from core import phones
from core.text import storable
from dispatch import calllogs, context
from dispatch.jobs import UNANSWERED_FEEDBACK
from flows.engine import Session
from ivr.callstate import Replayed
from storage import audit
from storage.db import session_scope
from storage.models import AuditEvent, CallLog, Direction, ServiceRequest
from storage.redisdb import Direct
from telephony.call import CallTurn

log = logging.getLogger(__name__)
FINAL = calllogs.FINAL
UNANSWERED = frozenset({"busy", "failed", "no-answer", "canceled"})


def outcome(session: Session | None, call_status: str) -> str:
    """What the call came to, in the words a supervisor's report uses."""
    if session is None:
        return calllogs.outcome((), {}, None, call_status)
    return calllogs.outcome(session.path, session.vars, session.status.value, call_status)


def head(turn: CallTurn, at: datetime) -> dict[str, Any]:
    """What this callback says of its call, for its log. `at`: when the platform sent the callback."""
    status = storable(turn.status, 20)
    return {
        "call_sid": turn.call_id,
        "from_number": _number(turn.caller),
        "to_number": _number(turn.callee),
        "status": status,
        "duration_s": seconds(turn.duration),
        "hangup_cause": storable(turn.hangup_cause, 40) or None,
        "direction": Direction.OUTBOUND if turn.outbound else Direction.INBOUND,
        "started_at": at,
        "ended_at": at if status in FINAL else None,
    }


def entry(turn: CallTurn, session: Session | None, at: datetime) -> calllogs.Entry:
    """The call's log as this callback leaves it. `at`: when the platform sent the callback."""
    values = head(turn, at)
    values |= calllogs.from_session(session.to_dict() if session else None, values["status"])
    return calllogs.Entry(values, with_session=session is not None)


def keep(
    commands: Direct,
    engine: sa.Engine,
    turn: CallTurn,
    state_key: str,
    at: datetime,
    first_delivery: tuple[str, int] | None = None,
    also: Sequence[Sequence[Any]] = (),
) -> list[Any] | None:
    """The call's log handed to the writer (`dispatch.calllogs`) with its flow session, stored under
    `state_key`, in one round trip to Redis, `also`'s commands sent in it: their answers. When Redis
    cannot be reached, the log is written here without the session, and None; a database error then
    is raised. With `first_delivery` (`replay_mark`), Replayed is raised when it was marked already:
    nothing was pushed."""
    try:
        pushed, answers = calllogs.push_with_session(commands, state_key, head(turn, at), first_delivery, also)
    except redis.RedisError:
        log.warning("Redis did not take the log of call %s; writing it now", turn.call_id)
        calllogs.write(engine, [entry(turn, None, at)])
        return None
    if not pushed:
        raise Replayed()
    return answers


def record_when_back(turn: dict[str, Any], session: dict[str, Any] | None, at: str) -> str:
    """The RQ job a status callback handed its log to, before `keep`, when the database could not be
    reached: written when it is back (RQ tries again, jobs.DATABASE_RETRY), dated when the platform
    sent it. Kept for the jobs still queued by a helpline from before."""
    logged = entry(_call_turn(turn), Session.from_dict(session) if session else None, datetime.fromisoformat(at))
    calllogs.write(context.current().engine, [logged])
    return "logged"


def _call_turn(fields: dict[str, Any]) -> CallTurn:
    """A job's status callback; one queued before the call turn existed holds Twilio's form (read by
    Twilio's adapter, imported only then: a web worker answering Plivo never loads Twilio's TwiML)."""
    if "CallSid" in fields:
        from telephony.twilio.twiml import call_turn as twilio_call_turn

        return twilio_call_turn(fields)
    return CallTurn(**fields)


def _twice_if_raced(write: Callable[[], None]) -> None:
    """Two webhooks of one call may both insert its log at once; the loser does it again, as an update."""
    try:
        write()
    except sa.exc.IntegrityError:
        write()


def seconds(raw: str | None) -> int | None:
    """The platform's count of seconds (a call's duration, a queue wait), or None when it is not one: "²" is a
    digit to str.isdigit, not to int(), and a day has fewer than a million seconds."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 7 else None


def _number(raw: str | None) -> str | None:
    if phones.is_withheld(raw):
        return "anonymous"
    return storable(raw or "", 40)


def record_queue_result(engine: sa.Engine, turn: CallTurn, result: str, wait_s: int) -> None:
    """How the caller's wait for an agent ended, and how long it was: the dashboard's abandon rate."""
    _twice_if_raced(lambda: _record_queue_result(engine, turn, result, wait_s))


def _record_queue_result(engine: sa.Engine, turn: CallTurn, result: str, wait_s: int) -> None:
    with session_scope(engine) as db:
        log = db.exec(select(CallLog).where(CallLog.call_sid == turn.call_id)).first()
        if log is None:
            log = CallLog(
                call_sid=turn.call_id,
                from_number=_number(turn.caller),
                to_number=_number(turn.callee),
                status="in-progress",
                outcome="agent_queue",
            )
        log.queue_result, log.queue_wait_s = result or None, wait_s
        db.add(log)


def note_unanswered_feedback(engine: sa.Engine, request_id: int, call_status: str) -> None:
    """The citizen did not pick up the feedback call: the request goes on the agents' worklist (once)."""
    with session_scope(engine) as db:
        if db.get(ServiceRequest, request_id) is None:
            return
        noted = db.exec(
            select(AuditEvent.id).where(AuditEvent.action == UNANSWERED_FEEDBACK, AuditEvent.entity_id == request_id)
        ).first()
        if noted is None:
            audit.record(
                db,
                UNANSWERED_FEEDBACK,
                actor="ivr",
                entity="service_request",
                entity_id=request_id,
                reason=call_status[:20] or None,
            )
