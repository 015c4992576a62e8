"""The worker's day on a job: on the way (with an ETA), arrived, started with the citizen's start
code, then done with the completion code (dispatch/offers.complete); and a visit not started in time.

Each step is a compare-and-set UPDATE of the request's own columns (its status stays `assigned`), so
an SMS and a call, or a retry, cannot record a step twice; each is an audit event on the timeline.

Decisions, documented once:
- "arrived" needs no "on my way" first, and "start" needs no "arrived": the start code can only be
  had at the citizen's door, so a right code records the arrival too.
- The start code is made (with `secrets`, as the completion code) at the first of "on my way" or
  "arrived", and goes to the citizen by SMS then; the worker never gets it. It is kept on the request
  (like the completion code), masked on the console's timeline, and never written to a log line.
- Wrong start codes are counted; after `visit.start_code_tries` only an agent's reset (a new code,
  sent to the citizen) lets the worker start.
- DONE without a start still completes the job (the citizen's completion code proves the work); it
  is flagged on the timeline ("done without the start code").
- A visit not started by its slot's end (without a slot: `visit.start_within_minutes` after it was
  assigned) is late: flagged once, and the worker's agency told by SMS; `visit.late_grace_minutes`
  after the flag (so the agency is always told first) it is taken back from the worker and offered
  again (dispatch/lifecycle.take_back_late).

Functions take a session and flush, never commit; the SMS they record are sent after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core import numbers, phones
from core.settings import Settings
from dispatch import messages
from dispatch.offers import COMPLETION_CODE, audit
from storage.audit import AuditAction
from storage.models import Caller, Provider, RequestStatus, ServiceRequest, Worker

START_CODE = "start code"  # the reason of a REQUEST_CODE_RESET or REQUEST_CODE_SENT of the start code
WRONG_START = "wrong start code"
TOO_MANY = "too many wrong start codes"
LATE_FLAG = "not started by the slot's end"


class Result(StrEnum):
    NOTED = "noted"  # the step is recorded
    AGAIN = "again"  # recorded before (a second "arrived"): nothing changed
    NO_CODE = "no_code"  # START before the citizen had a code: it is sent now (the arrival noted)
    WRONG_CODE = "wrong_code"
    LOCKED = "locked"  # too many wrong start codes: an agent resets it
    REFUSED = "refused"  # not the worker's open job, or the visit has started


class Code(StrEnum):
    """The citizen's two codes: one starts the visit, one closes the job."""

    START = "start"
    COMPLETION = "completion"

    @property
    def reason(self) -> str:
        return START_CODE if self is Code.START else COMPLETION_CODE


@dataclass(frozen=True)
class Visited:
    """What a worker's step did: the job it was about, what to tell them, and the SMS to send."""

    result: Result
    request: ServiceRequest | None = None
    tries_left: int = 0
    sms: tuple[int, ...] = ()


def job_of(session: Session, worker_id: int, number: str | None) -> ServiceRequest | None:
    """The worker's job in hand by its number; without one, their only job in hand."""
    query = select(ServiceRequest).where(
        ServiceRequest.worker_id == worker_id, ServiceRequest.status == RequestStatus.ASSIGNED
    )
    if number is not None:
        return session.exec(query.where(ServiceRequest.number == number)).first()
    in_hand = session.exec(query.limit(2)).all()
    return in_hand[0] if len(in_hand) == 1 else None


def _theirs(worker_id: int, request_id: int | None) -> tuple[sa.ColumnElement[bool], ...]:
    """The compare of every step: still this worker's job in hand, not yet started."""
    return (
        col(ServiceRequest.id) == request_id,
        col(ServiceRequest.status) == RequestStatus.ASSIGNED,
        col(ServiceRequest.worker_id) == worker_id,
        col(ServiceRequest.started_at).is_(None),
    )


def _code_kept_or_new() -> sa.ColumnElement[str]:
    return sa.func.coalesce(col(ServiceRequest.start_code), numbers.completion_code())


def on_the_way(
    session: Session, settings: Settings, request: ServiceRequest, worker_id: int, minutes: int, now: datetime
) -> Visited:
    """The worker sets out, `minutes` away: the citizen is texted the ETA and the start code. Again
    before arriving with another ETA, it updates it (and texts it again, with the same code); with
    the same ETA, nothing changes and the citizen is not texted twice."""
    minutes = max(1, min(minutes, settings.visit.max_eta_minutes))
    eta = col(ServiceRequest.eta_minutes)
    moved = session.execute(
        sa.update(ServiceRequest)
        .where(*_theirs(worker_id, request.id), col(ServiceRequest.arrived_at).is_(None))
        .where(sa.or_(eta.is_(None), eta != minutes))
        .values(on_the_way_at=now, eta_minutes=minutes, start_code=_code_kept_or_new(), updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        session.refresh(request)
        waiting = request.worker_id == worker_id and request.arrived_at is None and request.started_at is None
        same = waiting and request.status is RequestStatus.ASSIGNED and request.eta_minutes == minutes
        return Visited(Result.AGAIN if same else Result.REFUSED, request)
    session.refresh(request)
    audit(
        session,
        f"worker:{worker_id}",
        AuditAction.REQUEST_ON_THE_WAY,
        request,
        reason=f"ETA {minutes} min",
        worker_id=worker_id,
        eta_minutes=minutes,
    )
    worker = session.get(Worker, worker_id)
    values = {"worker": worker.name if worker else "", "minutes": str(minutes)}
    return Visited(Result.NOTED, request, sms=_to_citizen(session, settings, request, "on_the_way_citizen", values))


def arrived(session: Session, settings: Settings, request: ServiceRequest, worker_id: int, now: datetime) -> Visited:
    """The worker is at the door. A citizen not yet texted the start code (no "on my way") gets it now."""
    moved = session.execute(
        sa.update(ServiceRequest)
        .where(*_theirs(worker_id, request.id), col(ServiceRequest.arrived_at).is_(None))
        .values(arrived_at=now, start_code=_code_kept_or_new(), updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        session.refresh(request)
        waiting = request.worker_id == worker_id and request.arrived_at is not None and request.started_at is None
        return Visited(
            Result.AGAIN if waiting and request.status is RequestStatus.ASSIGNED else Result.REFUSED, request
        )
    session.refresh(request)
    audit(session, f"worker:{worker_id}", AuditAction.REQUEST_ARRIVED, request, worker_id=worker_id)
    told = request.on_the_way_at is not None  # the code went with the ETA
    sms = () if told else _to_citizen(session, settings, request, "start_code_citizen", {})
    return Visited(Result.NOTED, request, sms=sms)


def start(
    session: Session, settings: Settings, request: ServiceRequest, worker_id: int, code: str, now: datetime
) -> Visited:
    """The worker gives the start code the citizen told them: the visit has started (and the worker
    has arrived). A wrong code counts against `visit.start_code_tries`."""
    allowed = settings.visit.start_code_tries
    if request.worker_id != worker_id or request.status is not RequestStatus.ASSIGNED or request.started_at:
        return Visited(Result.REFUSED, request)
    if request.start_code is None:  # the citizen has no code yet: it goes now, and the arrival is noted
        done = arrived(session, settings, request, worker_id, now)
        return Visited(Result.NO_CODE if done.result is Result.NOTED else done.result, request, sms=done.sms)
    if request.start_code_tries >= allowed:
        _refused(session, request, worker_id, TOO_MANY)
        return Visited(Result.LOCKED, request)
    started = session.execute(
        sa.update(ServiceRequest)
        .where(
            *_theirs(worker_id, request.id),
            col(ServiceRequest.start_code) == code,
            col(ServiceRequest.start_code_tries) < allowed,
        )
        .values(started_at=now, arrived_at=sa.func.coalesce(col(ServiceRequest.arrived_at), now), updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if started:
        session.refresh(request)
        audit(session, f"worker:{worker_id}", AuditAction.REQUEST_STARTED, request, worker_id=worker_id)
        return Visited(Result.NOTED, request)
    return _wrong(session, request, worker_id, allowed)


def _wrong(session: Session, request: ServiceRequest, worker_id: int, allowed: int) -> Visited:
    """A wrong start code: counted (compare-and-set, so two at once both count), audited, never logged."""
    counted = session.execute(
        sa.update(ServiceRequest)
        .where(*_theirs(worker_id, request.id), col(ServiceRequest.start_code_tries) < allowed)
        .values(start_code_tries=col(ServiceRequest.start_code_tries) + 1)
    ).rowcount  # type: ignore[attr-defined]
    session.refresh(request)
    if not counted:
        return Visited(Result.LOCKED if request.started_at is None else Result.REFUSED, request)
    _refused(session, request, worker_id, WRONG_START)
    left = max(0, allowed - request.start_code_tries)
    return Visited(Result.WRONG_CODE if left else Result.LOCKED, request, tries_left=left)


def _refused(session: Session, request: ServiceRequest, worker_id: int, reason: str) -> None:
    audit(
        session,
        f"worker:{worker_id}",
        AuditAction.REQUEST_START_REFUSED,
        request,
        reason=reason,
        worker_id=worker_id,
        tries=request.start_code_tries,
    )


# -- an agent: the codes sent again, or made anew ------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """What an agent's resend or reset did: `error` in an agent's words, or the SMS to send."""

    error: str | None = None
    sms: tuple[int, ...] = ()


def resend_code(session: Session, settings: Settings, request_id: int, which: Code, actor: str, now: datetime) -> Sent:
    """The citizen is texted their start or completion code again (a start code not made yet is made)."""
    request = session.get(ServiceRequest, request_id)
    refusal = _why_not(request, which)
    if refusal or request is None:
        return Sent(refusal or "no such request")
    if which is Code.START and request.start_code is None:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(start_code=_code_kept_or_new(), updated_at=now)
        )
        session.refresh(request)
    sms = _code_sms(session, settings, request, which)
    if not sms:
        return Sent("the citizen has no mobile number to text")
    audit(session, actor, AuditAction.REQUEST_CODE_SENT, request, reason=which.reason)
    return Sent(sms=sms)


def reset_code(session: Session, settings: Settings, request_id: int, which: Code, actor: str, now: datetime) -> Sent:
    """A new code (the old one stops working, and the wrong tries start again), texted to the citizen."""
    request = session.get(ServiceRequest, request_id)
    refusal = _why_not(request, which)
    if refusal or request is None:
        return Sent(refusal or "no such request")
    old = request.start_code if which is Code.START else request.completion_code
    new = numbers.completion_code()
    while new == old:
        new = numbers.completion_code()
    where = [col(ServiceRequest.id) == request_id, col(ServiceRequest.status) == RequestStatus.ASSIGNED]
    values: dict[str, object] = {"completion_code": new}
    if which is Code.START:
        where.append(col(ServiceRequest.started_at).is_(None))
        values = {"start_code": new, "start_code_tries": 0}
    made = session.execute(sa.update(ServiceRequest).where(*where).values(updated_at=now, **values))
    if not made.rowcount:  # type: ignore[attr-defined]
        return Sent("the request changed meanwhile; look again")
    session.refresh(request)
    audit(session, actor, AuditAction.REQUEST_CODE_RESET, request, reason=which.reason)
    return Sent(sms=_code_sms(session, settings, request, which))


def _why_not(request: ServiceRequest | None, which: Code) -> str | None:
    if request is None:
        return "no such request"
    if request.status is not RequestStatus.ASSIGNED:
        return f"a request that is {request.status.value} has no code to send"
    if which is Code.START and request.started_at is not None:
        return "the visit has started: the start code is no longer needed"
    return None


def _code_sms(session: Session, settings: Settings, request: ServiceRequest, which: Code) -> tuple[int, ...]:
    template = "start_code_citizen" if which is Code.START else "completion_code_citizen"
    code = request.start_code if which is Code.START else request.completion_code
    return _to_citizen(session, settings, request, template, {"code": code or ""})


def _to_citizen(
    session: Session, settings: Settings, request: ServiceRequest, template: str, values: dict[str, str]
) -> tuple[int, ...]:
    """An SMS to the request's citizen, if their phone takes SMS; the start code unless given."""
    caller = session.get(Caller, request.caller_id) if request.caller_id else None
    if caller is None or not phones.indian_mobile(caller.phone):
        return ()
    filled = {"number": request.number, "code": request.start_code or "", **values}
    sms_id = messages.record_outbound(
        session, settings, caller.phone, template, request.language, filled, request_id=request.id
    )
    return (sms_id,)


# -- a visit not started in time ------------------------------------------------------------------------


class Lateness(StrEnum):
    ON_TIME = "on_time"  # started, not assigned, or its time is not up
    LATE = "late"  # not started by the slot's end: the agency is told
    TAKE_BACK = "take_back"  # late, and the grace after it is over too


def deadline(request: ServiceRequest, settings: Settings) -> datetime | None:
    """When the visit should have started by: the slot's end; without a slot, a while after assignment."""
    if request.slot_ends_at is not None:
        return request.slot_ends_at
    if request.assigned_at is None:
        return None
    return request.assigned_at + timedelta(minutes=settings.visit.start_within_minutes)


def lateness(request: ServiceRequest, settings: Settings, now: datetime) -> Lateness:
    """Pure: how late the visit is at `now`."""
    due = deadline(request, settings)
    if request.status is not RequestStatus.ASSIGNED or request.started_at is not None or due is None or now < due:
        return Lateness.ON_TIME
    flagged = request.late_flagged_at
    if flagged is not None and now >= flagged + timedelta(minutes=settings.visit.late_grace_minutes):
        return Lateness.TAKE_BACK  # the grace runs from the flag: the agency is always told first
    return Lateness.LATE


def late_filter(settings: Settings, now: datetime) -> sa.ColumnElement[bool]:
    """In SQL, the requests the sweeper hands to the late-visit job at `now`: late and not yet
    flagged, or flagged and past the grace (what `lateness` calls LATE unflagged, or TAKE_BACK)."""
    no_slot_by = now - timedelta(minutes=settings.visit.start_within_minutes)
    waiting = sa.and_(
        col(ServiceRequest.status) == RequestStatus.ASSIGNED,
        col(ServiceRequest.started_at).is_(None),
        sa.or_(
            col(ServiceRequest.slot_ends_at) <= now,
            sa.and_(col(ServiceRequest.slot_ends_at).is_(None), col(ServiceRequest.assigned_at) <= no_slot_by),
        ),
    )
    grace_over = col(ServiceRequest.late_flagged_at) <= now - timedelta(minutes=settings.visit.late_grace_minutes)
    return sa.and_(waiting, sa.or_(col(ServiceRequest.late_flagged_at).is_(None), grace_over))


@dataclass(frozen=True)
class Late:
    """What the late-visit job did: the SMS to send, the worker freed, the request to dispatch."""

    what: str
    sms: tuple[int, ...] = ()
    freed_worker: int | None = None
    dispatch: int | None = None


def handle_late(session: Session, settings: Settings, request_id: int, now: datetime) -> Late:
    """Flag a late visit once (the agency told), or take it back past the grace; run twice, once."""
    request = session.get(ServiceRequest, request_id)
    if request is None:
        return Late("no request")
    how = lateness(request, settings, now)
    if how is Lateness.TAKE_BACK:
        return _take_back(session, settings, request, now)
    if how is Lateness.LATE and request.late_flagged_at is None:
        return _flag(session, settings, request, now)
    return Late("nothing to do")


def _flag(session: Session, settings: Settings, request: ServiceRequest, now: datetime) -> Late:
    flagged = session.execute(
        sa.update(ServiceRequest)
        .where(*_theirs(request.worker_id or 0, request.id), col(ServiceRequest.late_flagged_at).is_(None))
        .values(late_flagged_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not flagged:
        return Late("flagged before")
    session.refresh(request)
    worker = session.get(Worker, request.worker_id) if request.worker_id else None
    audit(
        session,
        "dispatch",
        AuditAction.REQUEST_LATE,
        request,
        reason=LATE_FLAG,
        worker_id=request.worker_id,
    )
    agency = session.get(Provider, worker.provider_id) if worker and worker.provider_id else None
    if worker is None or agency is None or not agency.phone or not phones.indian_mobile(agency.phone):
        return Late("flagged")
    values = {
        "number": request.number,
        "service": settings.service(request.service_code).name("hi"),
        "worker": worker.name,
    }
    sms_id = messages.record_outbound(
        session, settings, agency.phone, "late_provider", "hi", values, request_id=request.id
    )
    return Late("flagged, the agency texted", sms=(sms_id,))


def _take_back(session: Session, settings: Settings, request: ServiceRequest, now: datetime) -> Late:
    # Imported here: lifecycle imports the jobs, which import the inbox, which imports this module.
    from dispatch import lifecycle

    worker = session.get(Worker, request.worker_id) if request.worker_id else None
    moved = lifecycle.take_back_late(session, request.id or 0, "dispatch", now)
    if moved.freed_worker is None:
        return Late(moved.error or "not taken back")
    sms: tuple[int, ...] = ()
    if worker is not None:
        values = {"number": request.number}
        sms = (
            messages.record_outbound(
                session,
                settings,
                worker.phone,
                "job_taken_back",
                worker.language,
                values,
                request_id=request.id,
                worker_id=worker.id,
            ),
        )
    return Late("taken back", sms=sms, freed_worker=moved.freed_worker, dispatch=request.id if moved.ok else None)
