"""Bridged calls: a worker and the citizen of their job reach each other only through the helpline,
which dials the other party with its own number as caller ID, so neither hears nor sees the other's
number. Who may be put through to whom, for how long after the job, and for how long a call: once,
here, for the worker's flow and the citizen's alike.

A request is open for bridged calls while a worker is assigned to it and for
`privacy.bridged_calls.after_completion_hours` after the work is done; never once it is cancelled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core import phones
from core.settings import BridgedCalls
from storage import audit
from storage.audit import AuditAction
from storage.models import Caller, RequestStatus, ServiceRequest, Worker

MAX_JOBS_READ = 3  # a worker hears at most this many open jobs, and picks one by its place
# A citizen whose request closed for calls this recently hears why when they ring; later, not.
EXPLAINED_FOR = timedelta(days=7)
DONE = (RequestStatus.COMPLETED, RequestStatus.CLOSED)


class Party(StrEnum):
    """Who rings the helpline to be put through: the other party is the one dialled."""

    WORKER = "worker"
    CITIZEN = "citizen"


class Closed(StrEnum):
    """Why a request cannot be bridged now, in words a prompt can say."""

    NO_WORKER = "no_worker"  # nobody has taken the job (yet)
    CANCELLED = "cancelled"
    DONE_LONG_AGO = "done_long_ago"  # the work was done longer ago than the window
    NOT_YOURS = "not_yours"  # the caller is not a party to the request
    UNREACHABLE = "unreachable"  # the other party has no number to dial (erased, or none on file)


class Bridgeable(Protocol):
    """What tells whether a request is open for bridged calls: a `ServiceRequest`, or a `CitizensRequest`."""

    @property
    def status(self) -> RequestStatus: ...
    @property
    def worker_id(self) -> int | None: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True)
class CitizensRequest:
    """A citizen's request that had a worker, as much of it as their call needs."""

    id: int
    number: str
    status: RequestStatus
    worker_id: int | None
    completed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Dialled:
    """What the edge dials: never said, never stored in the call's state."""

    number: str
    time_limit_s: int


def why_closed(request: Bridgeable, now: datetime, window: BridgedCalls) -> Closed | None:
    """None when the request's worker and citizen may be put through to each other now."""
    if request.status is RequestStatus.CANCELLED:
        return Closed.CANCELLED
    if request.worker_id is None:
        return Closed.NO_WORKER
    if request.status is RequestStatus.ASSIGNED:
        return None
    if request.status in DONE and request.completed_at is not None:
        open_until = request.completed_at + timedelta(hours=window.after_completion_hours)
        return None if now <= open_until else Closed.DONE_LONG_AGO
    return Closed.NO_WORKER  # new, offered, escalated: an agent has it, not a worker


def time_limit_s(window: BridgedCalls) -> int:
    return window.time_limit_minutes * 60


def jobs_of(session: Session, worker_id: int, now: datetime, window: BridgedCalls) -> list[ServiceRequest]:
    """A worker's jobs whose citizen they may ring through the helpline: assigned, or done within
    the window; the newest first."""
    done_since = now - timedelta(hours=window.after_completion_hours)
    query = (
        select(ServiceRequest)
        .where(
            ServiceRequest.worker_id == worker_id,
            sa.or_(
                col(ServiceRequest.status) == RequestStatus.ASSIGNED,
                sa.and_(col(ServiceRequest.status).in_(DONE), col(ServiceRequest.completed_at) >= done_since),
            ),
        )
        .order_by(col(ServiceRequest.assigned_at).desc(), col(ServiceRequest.id).desc())
        .limit(MAX_JOBS_READ)
    )
    return [job for job in session.exec(query).all() if why_closed(job, now, window) is None]


# Built once, as a Core query of the columns a call needs: every citizen's call asks it (after the
# language), and building it, or loading table models, took longer than running it.
_HAD_WORKER = (
    sa.select(*(col(getattr(ServiceRequest, field.name)) for field in dataclasses.fields(CitizensRequest)))
    .join(Caller, col(Caller.id) == ServiceRequest.caller_id)
    .where(col(Caller.phone) == sa.bindparam("phone", type_=sa.String), col(ServiceRequest.worker_id).is_not(None))
    .order_by(col(ServiceRequest.created_at).desc())
    .limit(10)
)


def request_of_citizen(
    connection: sa.Connection, phone: str, now: datetime, window: BridgedCalls
) -> tuple[CitizensRequest | None, Closed | None]:
    """The citizen's request whose worker they may ring (None, None when they have none to ring);
    else the newest that had a worker and closed for calls within EXPLAINED_FOR, with why."""
    had_worker = [CitizensRequest(*row) for row in connection.execute(_HAD_WORKER, {"phone": phone})]
    open_now = [request for request in had_worker if why_closed(request, now, window) is None]
    if open_now:
        return open_now[0], None
    recent = [request for request in had_worker if _closed_at(request, window) >= now - EXPLAINED_FOR]
    return (recent[0], why_closed(recent[0], now, window)) if recent else (None, None)


def _closed_at(request: Bridgeable, window: BridgedCalls) -> datetime:
    """When the request stopped being open for bridged calls."""
    if request.status in DONE and request.completed_at is not None:
        return request.completed_at + timedelta(hours=window.after_completion_hours)
    return request.updated_at


def dialled(
    session: Session, request_id: int, party: Party, phone: str | None, now: datetime, window: BridgedCalls
) -> Dialled | Closed:
    """The number to put `party` (ringing from `phone`) through to about `request_id`, looked up at
    the moment of dialling; or why not."""
    request = session.get(ServiceRequest, request_id)
    if request is None or phone is None:
        return Closed.NOT_YOURS
    worker = session.get(Worker, request.worker_id) if request.worker_id else None
    caller = session.get(Caller, request.caller_id) if request.caller_id else None
    ringing, other = (worker, caller) if party is Party.WORKER else (caller, worker)
    if ringing is None or ringing.phone != phone:
        return Closed.NOT_YOURS
    closed = why_closed(request, now, window)
    if closed is not None:
        return closed
    number = _dialable(other.phone if other else None)
    return Dialled(number, time_limit_s(window)) if number else Closed.UNREACHABLE


def _dialable(phone: str | None) -> str | None:
    if phone is None or phones.is_pseudonym(phone):
        return None
    return phones.to_e164(phone)


def record_call(session: Session, request_id: int, party: Party, actor: str, outcome: str, seconds: int) -> None:
    """A bridged call on the request's timeline: who rang whom, how it ended, how long they talked
    (no number: the timeline is read by agents and agencies)."""
    request = session.get(ServiceRequest, request_id)
    if request is None:
        return
    other = Party.CITIZEN if party is Party.WORKER else Party.WORKER
    audit.record(
        session,
        AuditAction.REQUEST_CALL_BRIDGED,
        actor=actor,
        entity="service_request",
        entity_id=request_id,
        reason=outcome,
        detail={"from": party.value, "to": other.value, "seconds": max(seconds, 0), "worker_id": request.worker_id},
    )
