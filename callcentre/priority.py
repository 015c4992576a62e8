"""Why a caller joining the agent queue is served before the others: a callback of theirs is due,
they rang within the last day, or a request of theirs is still open (escalated ones included). Read
once, when they join: the queue keeps the answer in its entry (`storage.callqueue.Call.priority`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import CallbackRequest, CallbackStatus, Caller, CallLog, RequestStatus, ServiceRequest

REPEAT_WITHIN = timedelta(hours=24)
OPEN = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)


class Reason(StrEnum):
    CALLBACK_DUE = "callback_due"
    REPEAT_CALL = "repeat_call"
    OPEN_REQUEST = "open_request"


def reasons(engine: sa.Engine, phone: str | None, call_sid: str, now: datetime) -> tuple[Reason, ...]:
    """Every reason this caller has to be served first; none for a withheld number."""
    if not phone:
        return ()
    found: list[Reason] = []
    with Session(engine) as db:
        due = sa.or_(col(CallbackRequest.due_at).is_(None), col(CallbackRequest.due_at) <= now)
        callback = select(CallbackRequest.id).where(
            CallbackRequest.phone == phone, CallbackRequest.status == CallbackStatus.PENDING, due
        )
        if db.exec(callback.limit(1)).first() is not None:
            found.append(Reason.CALLBACK_DUE)
        earlier = select(CallLog.id).where(
            CallLog.from_number == phone, CallLog.call_sid != call_sid, CallLog.started_at >= now - REPEAT_WITHIN
        )
        if db.exec(earlier.limit(1)).first() is not None:
            found.append(Reason.REPEAT_CALL)
        open_request = (
            select(ServiceRequest.id)
            .join(Caller, col(Caller.id) == ServiceRequest.caller_id)
            .where(Caller.phone == phone, col(ServiceRequest.status).in_(OPEN))
        )
        if db.exec(open_request.limit(1)).first() is not None:
            found.append(Reason.OPEN_REQUEST)
    return tuple(found)
