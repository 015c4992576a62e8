"""A request changed after it was booked: cancelled with a reason, or moved to another visit slot. One
set of actions for every channel (the citizen on the phone menu or by SMS, an agent in the console,
another system through the API), each a compare-and-set on the request, audited with who and why.

A cancelled request is withdrawn from its workers: open offers are withdrawn and their workers told,
an assigned worker is freed and told not to go. A moved job keeps its worker (one job at a time: they
have no other in hand; where parallel jobs are allowed, a move onto another of theirs is refused),
who is told the new time by SMS and may answer "2 NUMBER" to give it up: the request is then offered
again, and they are not asked about it again.

The citizen alone changes their request while no worker has it, and until `changes.free_until_hours`
before its slot; later (or a job in hand with no slot: the worker may be on the way) an agent decides
(`verdict`). Agents and the API are not held by that: they are the ones who decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.settings import ChangeReason, Changes, Settings
from core.slots import Slot
from dispatch import enqueue
from dispatch.offers import VISIT_CLEARED, audit, move, new_round, set_offer
from storage.audit import AuditAction
from storage.models import AuditEvent, Offer, OfferStatus, RequestStatus, ServiceRequest, Worker

OPEN = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)
UNASSIGNED = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ESCALATED)
NEEDS_AGENT = "too close to the visit: an agent decides"
CHANGED_MEANWHILE = "the request changed meanwhile; look again"
SAME_SLOT = "the request is booked for that slot already"
CLASH = " in that slot"  # "<worker> has job <number> in that slot"
GIVEN_UP = "the worker cannot make the new time"
CALLBACK_REASON = "change_asked"  # a callback an agent owes a citizen whose change is theirs to decide


class Verdict(StrEnum):
    """May the citizen change their request themselves?"""

    FREE = "free"
    AGENT = "agent"  # an agent decides: the caller is put through, or called back
    CLOSED = "closed"  # done, closed or cancelled: nothing to change


def verdict(rules: Changes, request: ServiceRequest, now: datetime) -> Verdict:
    """The policy of `changes:` in config.yaml, for the citizen's own change of `request` at `now`."""
    if request.status not in OPEN:
        return Verdict.CLOSED
    if request.status in UNASSIGNED and rules.free_while_unassigned:
        return Verdict.FREE
    if request.slot_starts_at is None:  # as soon as possible: a worker who has it may be on the way
        return Verdict.FREE if request.status in UNASSIGNED else Verdict.AGENT
    early = request.slot_starts_at - now >= timedelta(hours=rules.free_until_hours)
    return Verdict.FREE if early else Verdict.AGENT


@dataclass(frozen=True)
class Why:
    """Why a request is cancelled: one of `changes.reasons`, and or an agent's words."""

    reason: ChangeReason | None = None
    note: str = ""

    def text(self) -> str:
        """The audit's reason, in English (the timeline shows the reason's Hindi from the detail)."""
        said = self.reason.name_en if self.reason else ""
        return ": ".join(part for part in (said, self.note) if part) or "no reason given"

    def detail(self) -> dict[str, object]:
        if self.reason is None:
            return {}
        return {"reason_key": self.reason.key, "reason_hi": self.reason.name_hi}


@dataclass(frozen=True)
class Changed:
    """What a change did, for the jobs queued after its commit; `error` says why it did not happen."""

    error: str | None = None
    freed_worker: int | None = None  # the worker whose job it was: told not to go
    withdrawn_from: tuple[int, ...] = ()  # workers whose open offer was withdrawn: told the job is off
    keeps: int | None = None  # the worker keeping a moved job: told its new time
    asked: tuple[int, ...] = ()  # workers holding an open offer of a moved job: told its new time too
    request_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def cancel(
    session: Session,
    request_id: int,
    why: Why,
    actor: str,
    now: datetime,
    *,
    citizen: Changes | None = None,
    via: str | None = None,
) -> Changed:
    """Cancel an open request; `citizen`: the citizen asks, held by that policy (else an agent, or a
    system, decides). Its open offers are withdrawn, each audited; the workers to tell are returned."""
    request = session.get(ServiceRequest, request_id)
    if request is None:
        return Changed("no such request")
    old = request.status
    if old not in OPEN:
        return Changed(f"a request that is {old.value} cannot be cancelled")
    if citizen is not None and verdict(citizen, request, now) is not Verdict.FREE:
        return Changed(NEEDS_AGENT)
    detail = why.detail() | ({"via": via} if via else {})
    if not move(session, request, old, RequestStatus.CANCELLED, actor, why.text(), now, **detail):
        return Changed(CHANGED_MEANWHILE)
    withdrawn = _withdraw_offers(session, request, actor, now)
    freed = request.worker_id if old is RequestStatus.ASSIGNED else None
    return Changed(freed_worker=freed, withdrawn_from=withdrawn, request_id=request_id)


def _withdraw_offers(session: Session, request: ServiceRequest, actor: str, now: datetime) -> tuple[int, ...]:
    """Every offer of a cancelled request still open is withdrawn; the workers who had one."""
    pending = session.exec(
        select(Offer).where(Offer.request_id == request.id, Offer.status == OfferStatus.PENDING)
    ).all()
    told = []
    for offer in pending:
        if set_offer(session, offer.id, OfferStatus.PENDING, OfferStatus.WITHDRAWN, now):
            reason = "the request was cancelled"
            audit(
                session,
                actor,
                AuditAction.OFFER_WITHDRAWN,
                request,
                reason=reason,
                offer_id=offer.id,
                worker_id=offer.worker_id,
            )
            told.append(offer.worker_id)
    return tuple(told)


def reschedule(
    session: Session,
    settings: Settings,
    request_id: int,
    slot: Slot,
    actor: str,
    now: datetime,
    *,
    by_citizen: bool = False,
    via: str | None = None,
) -> Changed:
    """Book an open request for another slot (one booked "as soon as possible" gets its first). An
    assigned job keeps its worker, who is told; open offers stay open, and their workers are told the
    new time before they answer."""
    request = session.get(ServiceRequest, request_id)
    if request is None:
        return Changed("no such request")
    old = request.status
    if old not in OPEN:
        return Changed(f"a request that is {old.value} cannot be moved")
    if by_citizen and verdict(settings.changes, request, now) is not Verdict.FREE:
        return Changed(NEEDS_AGENT)
    if request.slot_starts_at == slot.starts_at and request.slot_ends_at == slot.ends_at:
        return Changed(SAME_SLOT)
    clash = _clash(session, request, slot) if old is RequestStatus.ASSIGNED else None
    if clash is not None:
        return Changed(clash)
    before = _when(settings, request.slot_starts_at, request.slot_ends_at)
    moved = session.execute(
        sa.update(ServiceRequest)
        .where(col(ServiceRequest.id) == request_id, col(ServiceRequest.status) == old)
        .where(_same_worker(request.worker_id))
        .values(slot_starts_at=slot.starts_at, slot_ends_at=slot.ends_at, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        return Changed(CHANGED_MEANWHILE)
    session.refresh(request)
    keeps = request.worker_id if old is RequestStatus.ASSIGNED else None
    extra: dict[str, Any] = {"from_slot": before, "to_slot": slot.key}
    extra |= {"worker_id": keeps} if keeps else {}
    extra |= {"via": via} if via else {}
    audit(session, actor, AuditAction.REQUEST_RESCHEDULED, request, reason=f"{before} → {slot.key}", **extra)
    asked = session.exec(
        select(Offer.worker_id).where(Offer.request_id == request_id, Offer.status == OfferStatus.PENDING)
    ).all()
    return Changed(keeps=keeps, asked=tuple(asked), request_id=request_id)


def _clash(session: Session, request: ServiceRequest, slot: Slot) -> str | None:
    """Why the worker who has the job cannot keep it in `slot`: another job of theirs then (only where
    `dispatch.allow_parallel_jobs` lets a worker hold several). An agent decides: the citizen's
    change goes to one; an agent may cancel and dispatch again, or choose another slot."""
    other = session.exec(
        select(ServiceRequest).where(
            ServiceRequest.worker_id == request.worker_id,
            ServiceRequest.status == RequestStatus.ASSIGNED,
            ServiceRequest.id != request.id,
            col(ServiceRequest.slot_starts_at) < slot.ends_at,
            col(ServiceRequest.slot_ends_at) > slot.starts_at,
        )
    ).first()
    if other is None:
        return None
    worker = session.get(Worker, request.worker_id)
    return f"{worker.name if worker else 'the worker'} has job {other.number}{CLASH}"


def clashes(changed: Changed) -> bool:
    """The move was refused for the worker's other job in that slot: an agent sorts it out."""
    return bool(changed.error and changed.error.endswith(CLASH))


def _same_worker(worker_id: int | None) -> sa.ColumnElement[bool]:
    return col(ServiceRequest.worker_id).is_(None) if worker_id is None else col(ServiceRequest.worker_id) == worker_id


def _when(settings: Settings, starts_at: datetime | None, ends_at: datetime | None) -> str:
    """A booked slot as its key (`2026-12-04/morning`), or its local day and hours when no period of
    the config matches it; "asap" when it had none."""
    if starts_at is None or ends_at is None:
        return "asap"
    zone = ZoneInfo(settings.call_centre.timezone)
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    period = next((p for p in settings.slots.periods if (p.starts, p.ends) == (start.time(), end.time())), None)
    day = start.date().isoformat()
    return f"{day}/{period.key}" if period else f"{day} {start:%H:%M}-{end:%H:%M}"


def give_up(session: Session, worker_id: int, number: str | None, now: datetime) -> ServiceRequest | None:
    """A worker who cannot make a moved job's new time gives it back ("2 NUMBER" to the SMS that told
    them): the job goes back to dispatch (assigned → new, a fresh round), their acceptance becomes a
    no (so dispatch does not ask them again) and the citizen's old code no longer closes it. Only a job
    moved since they took it; None when there is none."""
    job = _moved_job(session, worker_id, number)
    if job is None:
        return None
    released = session.execute(
        sa.update(ServiceRequest)
        .where(
            col(ServiceRequest.id) == job.id,
            col(ServiceRequest.status) == RequestStatus.ASSIGNED,
            col(ServiceRequest.worker_id) == worker_id,
        )
        .values(
            status=RequestStatus.NEW,
            worker_id=None,
            **new_round(now),
            **VISIT_CLEARED,  # the next worker's visit starts afresh: none of this one's codes or steps
        )
    ).rowcount  # type: ignore[attr-defined]
    if not released:
        return None
    session.execute(
        sa.update(Offer)
        .where(col(Offer.request_id) == job.id, col(Offer.worker_id) == worker_id)
        .where(col(Offer.status) == OfferStatus.ACCEPTED)
        .values(status=OfferStatus.DECLINED, answered_at=now)
    )
    session.refresh(job)
    actor = f"worker:{worker_id}"
    audit(
        session,
        actor,
        AuditAction.REQUEST_RELEASED,
        job,
        from_status=RequestStatus.ASSIGNED.value,
        reason=GIVEN_UP,
        worker_id=worker_id,
    )
    return job


def _moved_job(session: Session, worker_id: int, number: str | None) -> ServiceRequest | None:
    """The worker's job in hand (the one numbered, if they gave a number) moved since they took it."""
    query = select(ServiceRequest).where(
        ServiceRequest.worker_id == worker_id, ServiceRequest.status == RequestStatus.ASSIGNED
    )
    if number is not None:
        query = query.where(ServiceRequest.number == number)
    for job in session.exec(query.order_by(col(ServiceRequest.assigned_at).desc())).all():
        if _moved_since_assigned(session, job.id or 0):
            return job
    return None


def _moved_since_assigned(session: Session, request_id: int) -> bool:
    """The request's last move of slot came after its last assignment (the audit trail's order)."""

    def last(action: AuditAction) -> int:
        found = session.exec(
            select(sa.func.max(AuditEvent.id)).where(
                AuditEvent.entity == "service_request", AuditEvent.entity_id == request_id, AuditEvent.action == action
            )
        ).one()
        return int(found or 0)

    return last(AuditAction.REQUEST_RESCHEDULED) > last(AuditAction.REQUEST_ASSIGNED)


def tell(connection: redis.Redis, changed: Changed) -> None:
    """After the commit: each worker the change concerns is texted (a lost job: the worker is not told,
    the change holds)."""
    request_id = changed.request_id
    if request_id is None or not changed.ok:
        return
    for worker_id in (*changed.withdrawn_from, *([changed.freed_worker] if changed.freed_worker else [])):
        enqueue.job_cancelled(connection, request_id, worker_id)
    for worker_id in (*([changed.keeps] if changed.keeps is not None else []), *changed.asked):
        enqueue.job_moved(connection, request_id, worker_id)
