"""What an agent does to a request: start its dispatch again, hand it to an agency, or give it to a
chosen worker (a cancel, or a move to another slot, is `dispatch.changes`', shared with the citizen).
Each move is a compare-and-set on the request's status, audited with who and why, so an agent and a
worker answering at the same moment cannot both win."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from dispatch import enqueue, jobs, quality
from dispatch.offers import (
    VISIT_CLEARED,
    audit,
    hand_over,
    hold_workers,
    job_in_hand,
    move,
    new_round,
    set_offer,
    withdraw_pending,
)
from storage.audit import AuditAction
from storage.models import (
    Offer,
    OfferChannel,
    OfferStatus,
    Provider,
    RequestStatus,
    ServiceRequest,
    Worker,
    WorkerSkill,
)

log = logging.getLogger(__name__)
UNASSIGNED = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ESCALATED)  # waiting for a worker
REDISPATCHABLE = ASSIGNABLE = UNASSIGNED
DONE_BEFORE = "a worker already took this job; record a follow-up, or create a new request for new work"


@dataclass(frozen=True)
class Moved:
    """What a move did: `error` says, in an agent's words, why it did not happen; `freed_worker` the
    worker a job was taken from (their index entry and their SMS are the caller's to do)."""

    error: str | None = None
    freed_worker: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


FollowUp = Callable[[int], str]
# The job a move calls for, queued once, after the move's commit (a second dispatch round finds its
# offers open; a second notify_assigned finds the notice recorded and sends nothing).
FOLLOW_UPS: dict[FollowUp, Callable[[redis.Redis, int], bool]] = {
    jobs.dispatch_request: enqueue.dispatch_request,
    jobs.notify_assigned: enqueue.notify_assigned,
}


def queue_after(connection: redis.Redis, request_id: int, then: FollowUp | None = None) -> None:
    """After the commit: the job the move calls for. A lost job is redone by the sweeper (a request
    left new, an assignment nobody was told of). A cancel is `dispatch.changes`'."""
    if then is not None:
        FOLLOW_UPS[then](connection, request_id)


def redispatch(
    session: Session, request_id: int, actor: str, reason: str, now: datetime, reach_km: float | None = None
) -> Moved:
    """A fresh round of offers, reaching `reach_km` if the agent widened it: the offer count and the
    escalation clock start again from now. An offer still open stays open (its worker was texted and
    may yet say yes; texting them again would be a second SMS for one job) and counts among the
    round's offers at once; the round never asks a worker who said no or let an offer for this
    request run out."""
    request = session.get(ServiceRequest, request_id)
    if request is None:
        return Moved("no such request")
    old = request.status
    if old not in REDISPATCHABLE:
        return Moved(f"a request that is {old.value} cannot be dispatched again")
    if _had_a_worker(session, request_id):
        return Moved(DONE_BEFORE)
    still_open = old is RequestStatus.OFFERED and _open_offer(session, request_id)
    moved = session.execute(
        sa.update(ServiceRequest)
        .where(col(ServiceRequest.id) == request_id, col(ServiceRequest.status) == old)
        .values(
            status=RequestStatus.OFFERED if still_open else RequestStatus.NEW,
            **new_round(now, reach_km),
        )
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        return Moved("the request changed meanwhile; look again")
    session.refresh(request)
    audit(
        session,
        actor,
        AuditAction.REQUEST_REDISPATCHED,
        request,
        from_status=old.value,
        reason=reason,
        **({"radius_km": reach_km} if reach_km else {}),
    )
    return Moved()


def _open_offer(session: Session, request_id: int) -> bool:
    pending = select(Offer.id).where(Offer.request_id == request_id, Offer.status == OfferStatus.PENDING)
    return session.exec(pending).first() is not None


def hand_to_agency(
    session: Session, request_id: int, provider_id: int, actor: str, reason: str, now: datetime
) -> Moved:
    """The request goes to a provider agency, whose staff see it and give it to one of their own
    workers: the helpline stops offering it (open offers are withdrawn) and it waits, escalated, for
    the agency or an agent."""
    request, provider = session.get(ServiceRequest, request_id), session.get(Provider, provider_id)
    if request is None or provider is None or not provider.active:
        return Moved("no such request or agency")
    old = request.status
    if old not in UNASSIGNED:
        return Moved(f"a request that is {old.value} cannot be handed to an agency")
    handed = session.execute(
        sa.update(ServiceRequest)
        .where(col(ServiceRequest.id) == request_id, col(ServiceRequest.status) == old)
        .values(status=RequestStatus.ESCALATED, handed_to_provider_id=provider_id, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not handed:
        return Moved("the request changed meanwhile; look again")
    withdraw_pending(session, request_id, now)
    session.refresh(request)
    audit(
        session,
        actor,
        AuditAction.REQUEST_HANDED,
        request,
        from_status=None if old is RequestStatus.ESCALATED else old.value,  # a move only from new or offered
        reason=reason,
        provider_id=provider_id,
        provider=provider.name,
    )
    return Moved()


def assign(
    session: Session,
    request_id: int,
    worker_id: int,
    actor: str,
    now: datetime,
    *,
    allow_parallel_jobs: bool = False,
    by: str = "agent",
    police_valid_days: int = 0,
) -> Moved:
    """Give the job to a worker the agent (or the agency it was handed to) chose, after phoning them:
    verified and skilled only, and (unless parallel jobs are allowed) not while they have another
    job in hand, as for an offer. A worker who declined it before may be chosen: they said yes on the phone."""
    request, worker = session.get(ServiceRequest, request_id), session.get(Worker, worker_id)
    if request is None or worker is None:
        return Moved("no such request or worker")
    refusal = _unfit(session, request, worker, now, police_valid_days)
    if refusal:
        return Moved(refusal)
    if not allow_parallel_jobs:
        hold_workers(session, [worker_id], skip_locked=False)  # an offer's yes decides after this, or before
        in_hand = job_in_hand(session, worker_id, but_not=request_id)
        if in_hand is not None:
            return Moved(f"{worker.name} already has job {in_hand.number} in hand")
    old = request.status
    if not hand_over(session, request_id, worker_id, (old,), now):
        return Moved("the request changed meanwhile; look again")
    withdraw_pending(session, request_id, now)
    offer = Offer(
        request_id=request_id,
        worker_id=worker_id,
        status=OfferStatus.ACCEPTED,
        channel=OfferChannel.AGENT,
        created_at=now,
        expires_at=now,
        answered_at=now,
    )
    session.add(offer)
    session.flush()
    session.refresh(request)
    audit(
        session,
        actor,
        AuditAction.REQUEST_ASSIGNED,
        request,
        from_status=old.value,
        worker_id=worker_id,
        offer_id=offer.id,
        by=by,
    )
    return Moved()


def close_after_follow_up(session: Session, request_id: int, actor: str, reason: str, now: datetime) -> bool:
    """A finished job the citizen reported a problem with is closed once an agent has sorted it out."""
    request = session.get(ServiceRequest, request_id)
    if request is None or request.status is not RequestStatus.ESCALATED or request.completed_at is None:
        return False
    return move(session, request, RequestStatus.ESCALATED, RequestStatus.CLOSED, actor, reason, now)


def stand_down(session: Session, worker_id: int, actor: str, reason: str, now: datetime) -> list[int]:
    """A worker may no longer visit homes (deactivated, police verification refused): their open
    offers are withdrawn and their jobs in hand go back to an agent (escalated, to be given to
    someone else). Return the requests to dispatch again."""
    pending = session.exec(select(Offer).where(Offer.worker_id == worker_id, Offer.status == OfferStatus.PENDING)).all()
    again = []
    for offer in pending:
        request = session.get(ServiceRequest, offer.request_id)
        if request is not None and set_offer(session, offer.id, OfferStatus.PENDING, OfferStatus.WITHDRAWN, now):
            audit(
                session,
                actor,
                AuditAction.OFFER_WITHDRAWN,
                request,
                reason=reason,
                offer_id=offer.id,
                worker_id=worker_id,
            )
            again.append(request.id or 0)
    in_hand = select(ServiceRequest).where(
        ServiceRequest.worker_id == worker_id, ServiceRequest.status == RequestStatus.ASSIGNED
    )
    jobs = session.exec(in_hand).all()
    for job in jobs:
        _take_back(session, job, worker_id, actor, f"the worker was stood down: {reason}", now)
    return again


LATE_REASON = "the worker did not start the visit in time"


def take_back_late(session: Session, request_id: int, actor: str, now: datetime) -> Moved:
    """A visit not started in time (dispatch/visit.py decides when): the job is taken from its worker
    and offered again, as an agent's new round would; that worker is not asked about it again (their
    offer is `taken_back`). Compare-and-set: a worker starting at this moment, or an agent's move,
    wins or loses whole."""
    job = session.get(ServiceRequest, request_id)
    if job is None or job.status is not RequestStatus.ASSIGNED or job.worker_id is None or job.started_at is not None:
        return Moved("the visit is not waiting to start")
    worker_id = job.worker_id
    if not _take_back(session, job, worker_id, actor, LATE_REASON, now, OfferStatus.TAKEN_BACK, unstarted=True):
        return Moved("the request changed meanwhile; look again")
    again = redispatch(session, request_id, actor, f"offered again: {LATE_REASON}", now)
    return Moved(again.error, freed_worker=worker_id)


def _take_back(
    session: Session,
    job: ServiceRequest,
    worker_id: int,
    actor: str,
    reason: str,
    now: datetime,
    offer_to: OfferStatus = OfferStatus.WITHDRAWN,
    *,
    unstarted: bool = False,
) -> bool:
    """A job in hand goes back to an agent (escalated), free to give to someone else: the worker's
    acceptance is withdrawn (or marked taken back) and the old codes no longer start or close it."""
    where = [
        col(ServiceRequest.id) == job.id,
        col(ServiceRequest.status) == RequestStatus.ASSIGNED,
        col(ServiceRequest.worker_id) == worker_id,
    ]
    if unstarted:
        where.append(col(ServiceRequest.started_at).is_(None))
    taken = session.execute(
        sa.update(ServiceRequest)
        .where(*where)
        .values(status=RequestStatus.ESCALATED, worker_id=None, updated_at=now, **VISIT_CLEARED)
    ).rowcount  # type: ignore[attr-defined]
    if not taken:
        return False
    session.execute(
        sa.update(Offer)
        .where(
            col(Offer.request_id) == job.id,
            col(Offer.worker_id) == worker_id,
            col(Offer.status) == OfferStatus.ACCEPTED,
        )
        .values(status=offer_to, answered_at=now)
    )
    session.refresh(job)
    audit(
        session,
        actor,
        AuditAction.REQUEST_ESCALATED,
        job,
        from_status=RequestStatus.ASSIGNED.value,
        reason=reason,
        worker_id=worker_id,
    )
    return True


def _unfit(
    session: Session, request: ServiceRequest, worker: Worker, now: datetime, police_valid_days: int
) -> str | None:
    """Why this worker may not take this job, or None. An unverified worker never visits a home, a
    suspended one takes no job, and a rework's citizen may have asked not to have them again."""
    if request.status not in ASSIGNABLE:
        return f"a request that is {request.status.value} cannot be assigned"
    if _had_a_worker(session, request.id or 0):
        return DONE_BEFORE
    why = quality.may_visit(worker, now.date(), police_valid_days)
    if why == quality.SUSPENDED:
        return f"{worker.name} is suspended ({worker.suspension_reason or 'no reason given'}): lift it first"
    if why == quality.LAPSED:
        return f"{worker.name}'s police verification has expired: verify them again first"
    if why is not None:
        return f"{worker.name} is {why}"
    if request.avoid_worker_id == worker.id:
        return f"the citizen asked for another worker than {worker.name} for this rework"
    skilled = session.exec(
        select(WorkerSkill).where(WorkerSkill.worker_id == worker.id, WorkerSkill.service_code == request.service_code)
    ).first()
    if skilled is None:
        return f"{worker.name} does not do {request.service_code}"
    return None


def _had_a_worker(session: Session, request_id: int) -> bool:
    """A job that was once accepted (then reported as a problem) is not offered again: one accepted offer."""
    accepted = select(Offer.id).where(Offer.request_id == request_id, Offer.status == OfferStatus.ACCEPTED)
    return session.exec(accepted).first() is not None
