"""The escalation ladder (UP's grievance helpline 1076/IGRS): a request not resolved in time goes up
one rung of `escalation.levels`, and the people of the new rung answer for it; a request that
climbed closes only after an officer's recorded call to the citizen at its current rung.

Every request starts on rung 1. A rung's deadlines count from when the request reached it (rung 1:
from when it was filed): still unassigned past `assign_within_minutes`, or not completed past
`resolve_within_minutes`, and it goes up one rung, by compare-and-set on its level (a second run of
the same climb finds the level moved and does nothing). The top rung is the last: nothing climbs
past it. A completed, closed or cancelled request does not climb.

The rules (`due`) are pure; `climb`, `people_of` and `close` act on the database in the caller's
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.settings import Escalation, EscalationLevel
from dispatch.offers import audit, move, withdraw_pending
from storage.audit import AuditAction
from storage.models import (
    CitizenCall,
    CitizenCallStatus,
    RequestStatus,
    Role,
    ServiceRequest,
    User,
    UserDistrict,
    Worker,
)

UNRESOLVED = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)
FIRST = 1


class Late(StrEnum):
    """Why a request goes up a rung."""

    UNASSIGNED = "unassigned"  # no worker past the rung's assignment deadline
    UNRESOLVED = "unresolved"  # not completed past the rung's resolution deadline


@dataclass(frozen=True)
class Climb:
    """A request due to go up: from rung `level` to `level + 1`, and why."""

    level: int
    late: Late


def reached_at(request: ServiceRequest) -> datetime:
    """When the request reached its rung: the first rung, when it was filed."""
    return request.escalation_level_at or request.created_at


def late(level: EscalationLevel, reached: datetime, assigned: bool, now: datetime) -> Late | None:
    """Whether a request on `level` since `reached` is past one of the rung's deadlines."""
    if not assigned and now >= reached + timedelta(minutes=level.assign_within_minutes):
        return Late.UNASSIGNED
    if now >= reached + timedelta(minutes=level.resolve_within_minutes):
        return Late.UNRESOLVED
    return None


def due(
    ladder: Escalation, status: RequestStatus, level: int, reached: datetime, assigned: bool, now: datetime
) -> Climb | None:
    """The climb a request is due for now, or None: resolved, on the top rung, or within its deadlines."""
    if status not in UNRESOLVED or level >= ladder.top:
        return None
    why = late(ladder.level(level), reached, assigned, now)
    return Climb(level, why) if why is not None else None


def due_for(ladder: Escalation, request: ServiceRequest, now: datetime) -> Climb | None:
    return due(
        ladder, request.status, request.escalation_level, reached_at(request), request.worker_id is not None, now
    )


def overdue(ladder: Escalation, now: datetime) -> sa.ColumnElement[bool]:
    """The SQL of `due`: the requests some rung's deadline has passed for (the sweeper's query)."""
    reached = sa.func.coalesce(col(ServiceRequest.escalation_level_at), col(ServiceRequest.created_at))
    rungs = []
    for number, level in enumerate(ladder.levels[:-1], start=FIRST):
        unassigned = sa.and_(
            col(ServiceRequest.worker_id).is_(None),
            reached <= now - timedelta(minutes=level.assign_within_minutes),
        )
        unresolved = reached <= now - timedelta(minutes=level.resolve_within_minutes)
        rungs.append(sa.and_(col(ServiceRequest.escalation_level) == number, sa.or_(unassigned, unresolved)))
    if not rungs:
        return sa.false()
    return sa.and_(col(ServiceRequest.status).in_(UNRESOLVED), sa.or_(*rungs))


def climb(session: Session, request_id: int, from_level: int, ladder: Escalation, now: datetime) -> Climb | None:
    """Move the request from rung `from_level` up one, if it is still there and due; audited. None:
    nothing to do (climbed already, resolved meanwhile, or not due)."""
    request = session.get(ServiceRequest, request_id, with_for_update=True)
    if request is None or request.escalation_level != from_level:
        return None
    going = due_for(ladder, request, now)
    if going is None:
        return None
    moved = session.execute(
        sa.update(ServiceRequest)
        .where(col(ServiceRequest.id) == request_id, col(ServiceRequest.escalation_level) == from_level)
        .values(escalation_level=from_level + 1, escalation_level_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        return None
    session.refresh(request)
    audit(
        session,
        "system",
        AuditAction.REQUEST_LEVEL_RAISED,
        request,
        reason=going.late.value,
        from_level=from_level,
        to_level=from_level + 1,
        who=ladder.level(from_level + 1).who,
    )
    return going


def people_of(session: Session, level: EscalationLevel, request: ServiceRequest) -> list[User]:
    """The active console users who answer for `request` on `level`: a district officer for the
    request's district, an agency's staff for a job handed to it or done by one of its workers;
    state officers, supervisors and agents whoever they are."""
    query = select(User).where(col(User.active).is_(True), col(User.role) == Role(level.who))
    if level.who == Role.DISTRICT_OFFICER.value:
        query = query.where(
            col(User.id).in_(select(UserDistrict.user_id).where(UserDistrict.district == request.district))
        )
    if level.who == Role.PROVIDER.value:
        worker = session.get(Worker, request.worker_id) if request.worker_id else None
        agencies = {request.handed_to_provider_id, worker.provider_id if worker else None} - {None}
        query = query.where(col(User.provider_id).in_(agencies))
    return list(session.exec(query.order_by(col(User.id))).all())


def districts_of(session: Session, user_id: int) -> list[str]:
    query = select(UserDistrict.district).where(UserDistrict.user_id == user_id).order_by(col(UserDistrict.district))
    return list(session.exec(query).all())


# -- closing a request that climbed -------------------------------------------------------------------


class Refusal(StrEnum):
    """Why an escalated request cannot be closed yet, in words the console translates."""

    NOT_ESCALATED = "not_escalated"  # still on the first rung: the usual ways close it
    NOT_OPEN = "not_open"  # completed, closed or cancelled already
    NO_CALL = "no_call"  # no answered, recorded call to the citizen at this rung
    UNKNOWN_OUTCOME = "unknown_outcome"
    NO_NOTE = "no_note"


def qualifying_call(session: Session, request: ServiceRequest) -> CitizenCall | None:
    """The latest call to the citizen that lets the request close: answered and recorded, placed at
    the request's current rung (a call before it climbed again does not count)."""
    query = select(CitizenCall).where(
        CitizenCall.request_id == request.id,
        CitizenCall.escalation_level == request.escalation_level,
        CitizenCall.status == CitizenCallStatus.ANSWERED,
        col(CitizenCall.recording_id).is_not(None),
    )
    return session.exec(query.order_by(col(CitizenCall.id).desc())).first()


def why_not_closable(session: Session, request: ServiceRequest) -> Refusal | None:
    if request.escalation_level <= FIRST:
        return Refusal.NOT_ESCALATED
    if request.status not in UNRESOLVED:
        return Refusal.NOT_OPEN
    if qualifying_call(session, request) is None:
        return Refusal.NO_CALL
    return None


def close(
    session: Session, request_id: int, ladder: Escalation, outcome: str, note: str, actor: str, now: datetime
) -> Refusal | None:
    """Close a request that climbed, with the outcome the officer chose after the recorded call:
    its status to closed (compare-and-set), open offers withdrawn; audited with the outcome, the
    note and the call. None when closed; else why not."""
    request = session.get(ServiceRequest, request_id, with_for_update=True)
    if request is None:
        return Refusal.NOT_OPEN
    if ladder.outcome(outcome) is None:
        return Refusal.UNKNOWN_OUTCOME
    if not note:
        return Refusal.NO_NOTE
    refusal = why_not_closable(session, request)
    if refusal is not None:
        return refusal
    call = qualifying_call(session, request)
    assert call is not None
    old = request.status
    if not move(session, request, old, RequestStatus.CLOSED, actor, f"{outcome}: {note}", now):
        return Refusal.NOT_OPEN
    withdraw_pending(session, request_id, now)
    audit(
        session,
        actor,
        AuditAction.REQUEST_ESCALATION_CLOSED,
        request,
        reason=note,
        outcome=outcome,
        level=request.escalation_level,
        citizen_call_id=call.id,
        worker_id=request.worker_id,
    )
    return None
