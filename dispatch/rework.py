"""A rework visit: a finished job the citizen is unhappy with (a rating of `rework.threshold_rating`
or less, or a problem reported within `rework.window_days`) is visited again as a new request
linked to it (`rework_of_id`: same citizen, service, address and PIN code). Dispatch offers it to
the worker who did the job first (`rework.same_worker_first`), alone; when they decline or let it
run out, to the others as any request. The citizen or an agent may ask for another worker
(`avoid_worker_id`): that worker is then never asked.

Functions take a session and flush, never commit; the caller queues the rework's dispatch
(`enqueue.dispatch_request`) after its commit, and the sweeper dispatches one whose job was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core import phones
from core.settings import Rework, Settings, WorkersQuality
from dispatch import messages, quality
from dispatch.intake import unused_number
from dispatch.offers import audit, move, set_offer
from storage.audit import AuditAction
from storage.models import Caller, Offer, OfferStatus, RequestStatus, ServiceRequest

# A finished job: done and waiting for its rating, rated (closed), or gone to an agent after a problem.
FINISHED = (RequestStatus.COMPLETED, RequestStatus.CLOSED, RequestStatus.ESCALATED)
WAITING = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ESCALATED)  # no worker has it yet
PROBLEM = "the citizen reported a problem"


@dataclass(frozen=True)
class Reopened:
    """What asking for a rework did: the rework (new, or the one already open), or why there is none."""

    rework_id: int | None = None
    number: str | None = None
    new: bool = False
    error: str | None = None
    escalated: bool = False  # no rework: the job went to an agent instead


def low(rating: int, rules: Rework) -> bool:
    return rating <= rules.threshold_rating


def text_to_citizen(session: Session, settings: Settings, original_id: int, reopened: Reopened) -> int | None:
    """The citizen's SMS with a rework's number, booked on the phone (a number heard once on a call is
    soon lost; a rework booked by SMS is told by the SMS reply): recorded in the booking's transaction,
    the id to send after its commit (the sweeper sends one whose job was lost). None: nothing new was
    booked, or the citizen has no mobile."""
    original = session.get(ServiceRequest, original_id)
    if not reopened.new or reopened.rework_id is None or original is None or original.caller_id is None:
        return None
    caller = session.get(Caller, original.caller_id)
    if caller is None or phones.indian_mobile(caller.phone) is None:
        return None
    values = {"number": reopened.number or "", "original": original.number}
    return messages.record_outbound(
        session, settings, caller.phone, "rework_citizen", original.language, values, request_id=reopened.rework_id
    )


def in_window(request: ServiceRequest, rules: Rework, now: datetime) -> bool:
    """Whether a problem with this job may still be reported for a rework."""
    done = request.completed_at
    return done is not None and now - done <= timedelta(days=rules.window_days)


def rework_of(session: Session, request_id: int) -> ServiceRequest | None:
    """The rework visit of this job, if one was opened."""
    return session.exec(select(ServiceRequest).where(ServiceRequest.rework_of_id == request_id)).first()


def reopen(
    session: Session,
    request_id: int,
    rules: Rework,
    actor: str,
    reason: str,
    now: datetime,
    *,
    other_worker: bool = False,
) -> Reopened:
    """Open the rework visit of a finished job, once: the job is closed (a problem reported on a job
    not yet rated closes it), the rework is filed new, both audited and linked."""
    original = session.get(ServiceRequest, request_id)
    if original is None or original.completed_at is None or original.worker_id is None:
        return Reopened(error="only a finished job can be visited again")
    existing = rework_of(session, request_id)
    if existing is not None:
        return Reopened(existing.id, existing.number, error=f"its rework {existing.number} is already open")
    if original.status not in FINISHED:
        return Reopened(error=f"a request that is {original.status.value} cannot be visited again")
    if not in_window(original, rules, now):
        return Reopened(error=f"the job was done more than {rules.window_days} days ago")
    old = original.status
    if old is not RequestStatus.CLOSED and not move(session, original, old, RequestStatus.CLOSED, actor, reason, now):
        return Reopened(error="the request changed meanwhile; look again")
    rework = _copy(session, original, now, other_worker=other_worker)
    try:
        with session.begin_nested():  # two asks at once: the one-rework index lets one in
            session.add(rework)
            session.flush()
    except sa.exc.IntegrityError:
        session.expire(original)
        existing = rework_of(session, request_id)
        number = existing.number if existing else ""
        return Reopened(existing.id if existing else None, number, error=f"its rework {number} is already open")
    created = f"rework of {original.number}: {reason}"
    audit(session, actor, AuditAction.REQUEST_CREATED, rework, reason=created, rework_of=original.id)
    audit(
        session,
        actor,
        AuditAction.REQUEST_REWORK,
        original,
        reason=reason,
        rework_id=rework.id,
        rework_number=rework.number,
        worker_id=original.worker_id,
        other_worker=other_worker,
    )
    return Reopened(rework.id, rework.number, new=True)


def _copy(session: Session, original: ServiceRequest, now: datetime, *, other_worker: bool) -> ServiceRequest:
    """The same citizen, service and place, a new number; the worker to avoid, if asked."""
    return ServiceRequest(
        number=unused_number(session),
        service_code=original.service_code,
        pincode=original.pincode,
        district=original.district,
        latitude=original.latitude,
        longitude=original.longitude,
        address_note=original.address_note,
        preferred_time=original.preferred_time,
        description=original.description,
        contact_name=original.contact_name,
        caller_id=original.caller_id,
        language=original.language,
        channel=original.channel,
        filed_by=original.filed_by,
        created_at=now,
        updated_at=now,
        rework_of_id=original.id,
        avoid_worker_id=original.worker_id if other_worker else None,
    )


def first_choice(session: Session, request: ServiceRequest, rules: Rework) -> int | None:
    """The worker a rework is offered to before anyone else: the one who did the job, unless the
    rules or the citizen say otherwise."""
    if not rules.same_worker_first or request.rework_of_id is None or request.avoid_worker_id is not None:
        return None
    original = session.get(ServiceRequest, request.rework_of_id)
    return original.worker_id if original is not None else None


def another_worker(session: Session, rework_id: int, actor: str, reason: str, now: datetime) -> str | None:
    """The citizen (or an agent) wants someone else for the rework: the first worker's open offer is
    withdrawn and they are never asked; dispatch goes on (the caller queues it). None, or why not."""
    rework = session.get(ServiceRequest, rework_id)
    original = session.get(ServiceRequest, rework.rework_of_id) if rework and rework.rework_of_id else None
    if rework is None or original is None or original.worker_id is None:
        return "not a rework visit"
    if rework.avoid_worker_id is not None:
        return None  # asked before: nothing more to do
    if rework.status not in WAITING:
        return f"the rework is {rework.status.value}: a worker already has it"
    avoided = session.execute(
        sa.update(ServiceRequest)
        .where(
            col(ServiceRequest.id) == rework_id,
            col(ServiceRequest.status).in_(WAITING),
            col(ServiceRequest.avoid_worker_id).is_(None),
        )
        .values(avoid_worker_id=original.worker_id, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not avoided:
        return "the request changed meanwhile; look again"
    session.refresh(rework)
    worker_id = original.worker_id
    asked = select(Offer).where(
        Offer.request_id == rework_id, Offer.worker_id == worker_id, Offer.status == OfferStatus.PENDING
    )
    for offer in session.exec(asked).all():
        if set_offer(session, offer.id, OfferStatus.PENDING, OfferStatus.WITHDRAWN, now):
            audit(
                session,
                actor,
                AuditAction.OFFER_WITHDRAWN,
                rework,
                reason=reason,
                offer_id=offer.id,
                worker_id=worker_id,
            )
    audit(session, actor, AuditAction.REQUEST_REWORK_OTHER_WORKER, rework, reason=reason, worker_id=worker_id)
    return None


def after_rating(
    session: Session,
    request_id: int,
    rating: int,
    rules: Rework,
    standards: WorkersQuality,
    actor: str,
    now: datetime,
) -> Reopened:
    """After a rating is saved: a low one opens the rework; the worker's record is judged either way."""
    request = session.get(ServiceRequest, request_id)
    reopened = Reopened()
    if request is not None and low(rating, rules):
        reopened = reopen(session, request_id, rules, actor, f"rated {rating}", now)
    _judge(session, request, rules, standards, now)
    return reopened


def problem_reported(
    session: Session,
    request_id: int,
    rules: Rework,
    standards: WorkersQuality,
    actor: str,
    now: datetime,
    *,
    other_worker: bool = False,
) -> Reopened:
    """The citizen says the job is not right: a rework within the window; past it, or when none can be
    opened, a job not yet rated goes to an agent (escalated), as before reworks."""
    reopened = reopen(session, request_id, rules, actor, PROBLEM, now, other_worker=other_worker)
    request = session.get(ServiceRequest, request_id)
    if reopened.rework_id is None and request is not None and _to_an_agent(session, request, actor, now):
        reopened = Reopened(error=reopened.error, escalated=True)
    _judge(session, request, rules, standards, now)
    return reopened


def _to_an_agent(session: Session, request: ServiceRequest, actor: str, now: datetime) -> bool:
    """A problem with a job not yet rated, when no rework can be booked: an agent sorts it out."""
    if request.status is not RequestStatus.COMPLETED:
        return False
    return move(session, request, RequestStatus.COMPLETED, RequestStatus.ESCALATED, actor, PROBLEM, now)


def _judge(
    session: Session, request: ServiceRequest | None, rules: Rework, standards: WorkersQuality, now: datetime
) -> None:
    if request is not None and request.worker_id is not None:
        quality.review(session, request.worker_id, standards, rules, now, actor="quality")


def linked(session: Session, request: ServiceRequest) -> tuple[ServiceRequest | None, ServiceRequest | None]:
    """The job this one redoes, and the rework that redoes this one: the request page links both."""
    before = session.get(ServiceRequest, request.rework_of_id) if request.rework_of_id else None
    return before, rework_of(session, request.id or 0)
