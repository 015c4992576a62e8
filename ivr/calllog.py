"""CallLog rows from Twilio's status callbacks: duration, the path through the menu, the outcome."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlmodel import select

from dispatch.jobs import UNANSWERED_FEEDBACK
from flows.engine import Session
from storage import phones
from storage.db import session_scope
from storage.models import AuditEvent, CallLog, Direction, ServiceRequest, utcnow
from storage.text import storable

FINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
UNANSWERED = frozenset({"busy", "failed", "no-answer", "canceled"})


def outcome(session: Session | None, call_status: str) -> str:
    """What the call came to, in the words a supervisor's report uses."""
    if session is None:
        return "no_flow" if call_status in FINAL else "in_progress"
    path = set(session.path)
    if session.vars.get("request_number"):
        return "request_created"
    if "record_callback" in path:
        return "callback_requested"
    if "agent_queue" in path:
        return "agent_queue"
    if path & {"read_requests", "find_request"}:
        return "tracked"
    return "ended_in_menu" if session.status.value == "ended" else "abandoned"


def record(engine: sa.Engine, form: Mapping[str, str], session: Session | None) -> None:
    """Insert or update the call's log; a late, out-of-order callback never undoes a final status."""
    _twice_if_raced(lambda: _record(engine, form, session))


def _twice_if_raced(write: Callable[[], None]) -> None:
    """Two webhooks of one call may both insert its log at once; the loser does it again, as an update."""
    try:
        write()
    except sa.exc.IntegrityError:
        write()


def _record(engine: sa.Engine, form: Mapping[str, str], session: Session | None) -> None:
    call_sid = form.get("CallSid", "")
    status = storable(form.get("CallStatus", ""), 20)
    with session_scope(engine) as db:
        log = db.exec(select(CallLog).where(CallLog.call_sid == call_sid)).first()
        if log is None:
            log = CallLog(call_sid=call_sid, from_number=_number(form.get("From")), to_number=_number(form.get("To")),
                          direction=Direction.OUTBOUND if form.get("Direction", "").startswith("outbound")
                          else Direction.INBOUND)  # fmt: skip
        elif log.status in FINAL and status not in FINAL:
            return
        log.status = status
        duration = seconds(form.get("CallDuration"))
        log.duration_s = log.duration_s if duration is None else duration
        if session is not None:
            log.path, log.language = list(session.path), session.language
            log.request_id = _request_id(db, session.vars.get("request_number"))
        log.outcome = outcome(session, status)
        if status in FINAL:
            log.ended_at = utcnow()
        db.add(log)


def seconds(raw: str | None) -> int | None:
    """Twilio's count of seconds (CallDuration, QueueTime), or None when it is not one: "²" is a
    digit to str.isdigit, not to int(), and a day has fewer than a million seconds."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 7 else None


def _number(raw: str | None) -> str | None:
    if phones.is_withheld(raw):
        return "anonymous"
    return storable(raw or "", 40)


def _request_id(db: object, number: object) -> int | None:
    if not isinstance(number, str):
        return None
    return db.exec(select(ServiceRequest.id).where(ServiceRequest.number == number)).first()  # type: ignore[attr-defined]


def record_queue_result(engine: sa.Engine, form: Mapping[str, str], result: str, wait_s: int) -> None:
    """How the caller's wait for an agent ended, and how long it was: the dashboard's abandon rate."""
    _twice_if_raced(lambda: _record_queue_result(engine, form, result, wait_s))


def _record_queue_result(engine: sa.Engine, form: Mapping[str, str], result: str, wait_s: int) -> None:
    call_sid = form.get("CallSid", "")
    with session_scope(engine) as db:
        log = db.exec(select(CallLog).where(CallLog.call_sid == call_sid)).first()
        if log is None:
            log = CallLog(call_sid=call_sid, from_number=_number(form.get("From")), to_number=_number(form.get("To")),
                          status="in-progress", outcome="agent_queue")  # fmt: skip
        log.queue_result, log.queue_wait_s = result or None, wait_s
        db.add(log)


def note_unanswered_feedback(engine: sa.Engine, request_id: int, call_status: str) -> None:
    """The citizen did not pick up the feedback call: the request goes on the agents' worklist (once)."""
    with session_scope(engine) as db:
        if db.get(ServiceRequest, request_id) is None:
            return
        noted = db.exec(select(AuditEvent.id).where(AuditEvent.action == UNANSWERED_FEEDBACK,
                                                    AuditEvent.entity_id == request_id)).first()  # fmt: skip
        if noted is None:
            db.add(AuditEvent(actor="ivr", action=UNANSWERED_FEEDBACK, entity="service_request", entity_id=request_id,
                              reason=call_status[:20] or None))  # fmt: skip
