"""An officer's recorded call to the citizen of a request that climbed the escalation ladder, before
closing it (IGRS: officers phone the complainant before closing). The helpline rings the officer's
own phone first, then puts them through to the citizen with the helpline's number as caller ID, and
the platform records the conversation from the answer. The citizen's number is looked up at the
moment of dialling and goes to the platform only: never to the browser, never into the call's URLs.

A call is `placed`, then `answered` (the citizen picked up) or `unanswered`/`failed`; its recording,
kept with the spoken addresses (`Recording.kind` citizen_call), arrives by the platform's own
callback, before or after the dial's end."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col

from core import phones
from dispatch import ladder
from dispatch.offers import audit
from storage.audit import AuditAction
from storage.models import (
    Caller,
    CitizenCall,
    CitizenCallStatus,
    Recording,
    RecordingKind,
    ServiceRequest,
    User,
)

RING_OFFICER_S = 25  # how long the officer's phone rings before the call is given up
RING_CITIZEN_S = 30
TALK_LIMIT_S = 20 * 60


class NoCall(StrEnum):
    """Why the officer cannot call the citizen now, in words the console translates."""

    NOT_ESCALATED = "not_escalated"
    NOT_OPEN = "not_open"
    NO_OFFICER_PHONE = "no_officer_phone"  # the officer has no phone on their user
    NO_CITIZEN_PHONE = "no_citizen_phone"  # none on file, or erased


def citizen_number(session: Session, request: ServiceRequest) -> str | None:
    """The citizen's number to dial now: None when there is none (no caller, or erased to its hash)."""
    caller = session.get(Caller, request.caller_id) if request.caller_id else None
    if caller is None or phones.is_pseudonym(caller.phone):
        return None
    return phones.to_e164(caller.phone)


def place(session: Session, request: ServiceRequest, officer: User, now: datetime) -> CitizenCall | NoCall:
    """Record a call about to be placed, at the request's current rung; audited."""
    if request.escalation_level <= ladder.FIRST:
        return NoCall.NOT_ESCALATED
    if request.status not in ladder.UNRESOLVED:
        return NoCall.NOT_OPEN
    if not officer.phone:
        return NoCall.NO_OFFICER_PHONE
    if citizen_number(session, request) is None:
        return NoCall.NO_CITIZEN_PHONE
    call = CitizenCall(
        request_id=request.id or 0, user_id=officer.id or 0, escalation_level=request.escalation_level, placed_at=now
    )
    session.add(call)
    session.flush()
    audit(
        session,
        f"user:{officer.id}",
        AuditAction.REQUEST_CITIZEN_CALL_PLACED,
        request,
        reason="placed",
        citizen_call_id=call.id,
        level=request.escalation_level,
    )
    return call


def to_dial(session: Session, call_id: int) -> tuple[CitizenCall, str] | None:
    """The call and the citizen's number, when the officer has picked up and the call may still go
    ahead (placed, the request still open at the same rung); else None."""
    call = session.get(CitizenCall, call_id)
    if call is None or call.status is not CitizenCallStatus.PLACED:
        return None
    request = session.get(ServiceRequest, call.request_id)
    if request is None or request.status not in ladder.UNRESOLVED:
        return None
    if request.escalation_level != call.escalation_level:
        return None
    number = citizen_number(session, request)
    return (call, number) if number else None


def ended(session: Session, call_id: int, answered: bool, seconds: int, outcome: str, now: datetime) -> bool:
    """The citizen's leg ended: answered (and for how long) or not; once (compare-and-set on placed)."""
    status = CitizenCallStatus.ANSWERED if answered else CitizenCallStatus.UNANSWERED
    moved = session.execute(
        sa.update(CitizenCall)
        .where(col(CitizenCall.id) == call_id, col(CitizenCall.status) == CitizenCallStatus.PLACED)
        .values(status=status, seconds=max(seconds, 0), ended_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        return False
    _audit_end(session, call_id, outcome)
    return True


def recorded(
    session: Session, call_id: int, call_sid: str, platform: str, recording_id: str, url: str, seconds: int
) -> bool:
    """The platform's recording of the conversation: kept with the request's recordings, linked to the
    call. A platform's retry of the callback is the same recording, kept once."""
    call = session.get(CitizenCall, call_id, with_for_update=True)
    if call is None or call.recording_id is not None or not recording_id or not url:
        return False
    recording = Recording(
        call_sid=call_sid[:40],
        request_id=call.request_id,
        platform=platform,
        recording_id=recording_id[:64],
        url=url[:500],
        duration_s=max(seconds, 0),
        kind=RecordingKind.CITIZEN_CALL,
    )
    session.add(recording)
    session.flush()
    call.recording_id = recording.id
    session.add(call)
    return True


def _audit_end(session: Session, call_id: int, outcome: str) -> None:
    call = session.get(CitizenCall, call_id)
    request = session.get(ServiceRequest, call.request_id) if call else None
    if call is None or request is None:
        return
    audit(
        session,
        f"user:{call.user_id}",
        AuditAction.REQUEST_CITIZEN_CALL_ENDED,
        request,
        reason=outcome,
        citizen_call_id=call.id,
        seconds=call.seconds,
        level=call.escalation_level,
    )


def recording_of(session: Session, request: ServiceRequest) -> Recording | None:
    """The recording of the call that lets the request close (at its current rung), still kept."""
    call = ladder.qualifying_call(session, request)
    recording = session.get(Recording, call.recording_id) if call and call.recording_id else None
    return recording if recording is not None and recording.erased_at is None and recording.url else None


def calls_of(session: Session, request_id: int) -> list[CitizenCall]:
    query = sa.select(CitizenCall).where(col(CitizenCall.request_id) == request_id).order_by(col(CitizenCall.id))
    return list(session.scalars(query).all())
