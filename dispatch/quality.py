"""A worker's quality record: when their ratings or complaints put them on their agency's review
list, a suspension (no offers while it lasts), and a police verification that expires.

The rules are pure functions of the record (`review_reason`, `expires_on`, `reminder_due`); the
rest reads the record from the database and moves a worker on or off the list by compare-and-set,
audited. A complaint is a job of the worker rated at or under `rework.threshold_rating`, or one the
citizen reported a problem with (it has a rework visit); it counts from the day the job was done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from core.settings import Rework, WorkersQuality
from storage.audit import AuditAction, record
from storage.models import ServiceRequest, VerificationStatus, Worker

SUSPENDED = "suspended"  # why a worker gets no offers, as dispatch and the console say it
LAPSED = "police verification expired"


# -- the rules (pure) -------------------------------------------------------------------------------


def review_reason(ratings: Sequence[int], complaints: Sequence[date], rules: WorkersQuality, today: date) -> str | None:
    """Why these ratings (newest first) and complaints (the days of the jobs complained of) put a
    worker on the review list, or None. The average is judged over the last `rated_jobs` ratings
    only once there are that many."""
    recent = ratings[: rules.rated_jobs]
    if len(recent) == rules.rated_jobs:
        average = sum(recent) / len(recent)
        if average < rules.rating_floor:
            return f"average rating {average:.2f} over the last {len(recent)} rated jobs, under {rules.rating_floor:g}"
    since = today - timedelta(days=rules.complaint_window_days)
    counted = sum(1 for day in complaints if day > since)
    if counted >= rules.complaints:
        return f"{counted} complaints in {rules.complaint_window_days} days"
    return None


def expires_on(verified_on: date | None, valid_days: int) -> date | None:
    """The first day a police verification no longer holds; None: it does not expire (or no date)."""
    if verified_on is None or valid_days <= 0:
        return None
    return verified_on + timedelta(days=valid_days)


def verification_holds(worker: Worker, today: date, valid_days: int) -> bool:
    """Verified, and not past its expiry. A verification with no date recorded does not expire."""
    if worker.police_verification is not VerificationStatus.VERIFIED:
        return False
    expiry = expires_on(worker.police_verified_on, valid_days)
    return expiry is None or today < expiry


def days_left(verified_on: date | None, today: date, valid_days: int) -> int | None:
    """Days until the verification expires (0 or less: expired); None: it does not."""
    expiry = expires_on(verified_on, valid_days)
    return None if expiry is None else (expiry - today).days


def reminder_due(
    verified_on: date | None, today: date, rules: WorkersQuality, reminded_for: date | None
) -> date | None:
    """The expiry to remind the agency of today, or None: within `police_reminder_days_before` of it,
    not yet past it, and not reminded of this expiry before (a new verification is a new expiry)."""
    expiry = expires_on(verified_on, rules.police_verification_valid_days)
    if expiry is None or reminded_for == expiry or today >= expiry:
        return None
    return expiry if (expiry - today).days <= rules.police_reminder_days_before else None


def may_visit(worker: Worker, today: date, valid_days: int) -> str | None:
    """Why this worker may get no offer or job today (deactivated, suspended, not or no longer
    verified), or None."""
    if not worker.active:
        return "deactivated"
    if worker.suspended_at is not None:
        return SUSPENDED
    if worker.police_verification is not VerificationStatus.VERIFIED:
        return "not police-verified"
    if not verification_holds(worker, today, valid_days):
        return LAPSED
    return None


# -- the record, from the database ------------------------------------------------------------------


def ratings_of(session: Session, worker: Worker, limit: int) -> list[int]:
    """The worker's latest ratings, newest first, since their review was last cleared."""
    query = select(ServiceRequest.rating).where(
        ServiceRequest.worker_id == worker.id, col(ServiceRequest.rating).is_not(None)
    )
    if worker.review_cleared_at is not None:
        query = query.where(col(ServiceRequest.completed_at) > worker.review_cleared_at)
    query = query.order_by(col(ServiceRequest.completed_at).desc(), col(ServiceRequest.id).desc()).limit(limit)
    return [int(rating) for rating in session.exec(query).all() if rating is not None]


def complaints_of(session: Session, worker: Worker, threshold: int, since: datetime) -> list[date]:
    """The days of the worker's jobs complained of (rated low, or redone), done after `since` and after
    their review was last cleared."""
    redone = aliased(ServiceRequest)
    reworked = sa.exists().where(col(redone.rework_of_id) == col(ServiceRequest.id))
    low = sa.and_(col(ServiceRequest.rating).is_not(None), col(ServiceRequest.rating) <= threshold)
    after = max(since, worker.review_cleared_at) if worker.review_cleared_at else since
    query = select(ServiceRequest.completed_at).where(
        ServiceRequest.worker_id == worker.id,
        col(ServiceRequest.completed_at) > after,
        sa.or_(low, reworked),
    )
    return [moment.date() for moment in session.exec(query).all() if moment is not None]


def review(
    session: Session, worker_id: int, rules: WorkersQuality, rework: Rework, now: datetime, actor: str
) -> str | None:
    """Judge the worker's record after a rating or a complaint: put them on the review list if the
    rules say so and they are not on it; the reason, when they are put on it now."""
    worker = session.get(Worker, worker_id)
    if worker is None or worker.review_reason is not None:
        return None
    ratings = ratings_of(session, worker, rules.rated_jobs)
    since = now - timedelta(days=rules.complaint_window_days + 1)
    reason = review_reason(ratings, complaints_of(session, worker, rework.threshold_rating, since), rules, now.date())
    if reason is None:
        return None
    flagged = session.execute(
        sa.update(Worker)
        .where(col(Worker.id) == worker_id, col(Worker.review_reason).is_(None))
        .values(review_reason=reason, review_flagged_at=now, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not flagged:
        return None
    record(session, AuditAction.WORKER_REVIEW_FLAGGED, actor=actor, entity="worker", entity_id=worker_id, reason=reason)
    return reason


def clear_review(session: Session, worker_id: int, note: str, actor: str, now: datetime) -> bool:
    """The agency has looked into it: off the list, with their note; the record counts afresh from now."""
    worker = session.get(Worker, worker_id)
    if worker is None or worker.review_reason is None:
        return False
    was = worker.review_reason
    cleared = session.execute(
        sa.update(Worker)
        .where(col(Worker.id) == worker_id, col(Worker.review_reason) == was)
        .values(review_reason=None, review_cleared_at=now, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if cleared:
        detail = {"was": was}
        record(
            session,
            AuditAction.WORKER_REVIEW_CLEARED,
            actor=actor,
            entity="worker",
            entity_id=worker_id,
            reason=note,
            detail=detail,
        )
    return bool(cleared)


def suspend(session: Session, worker_id: int, reason: str, actor: str, now: datetime) -> bool:
    """No offers and no jobs until lifted; the caller stands the worker down from what they hold."""
    suspended = session.execute(
        sa.update(Worker)
        .where(col(Worker.id) == worker_id, col(Worker.suspended_at).is_(None))
        .values(suspended_at=now, suspension_reason=reason, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if suspended:
        record(session, AuditAction.WORKER_SUSPENDED, actor=actor, entity="worker", entity_id=worker_id, reason=reason)
    return bool(suspended)


def lift_suspension(session: Session, worker_id: int, note: str, actor: str, now: datetime) -> bool:
    lifted = session.execute(
        sa.update(Worker)
        .where(col(Worker.id) == worker_id, col(Worker.suspended_at).is_not(None))
        .values(suspended_at=None, suspension_reason=None, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if lifted:
        record(
            session,
            AuditAction.WORKER_SUSPENSION_LIFTED,
            actor=actor,
            entity="worker",
            entity_id=worker_id,
            reason=note,
        )
    return bool(lifted)


def rework_counts(session: Session, worker_ids: Iterable[int]) -> dict[int, int]:
    """How many of each worker's jobs had to be visited again."""
    ids = list(worker_ids)
    if not ids:
        return {}
    redone = aliased(ServiceRequest)
    query = (
        select(ServiceRequest.worker_id, sa.func.count())
        .join(redone, col(redone.rework_of_id) == col(ServiceRequest.id))
        .where(col(ServiceRequest.worker_id).in_(ids))
        .group_by(col(ServiceRequest.worker_id))
    )
    return {int(worker or 0): int(count) for worker, count in session.exec(query).all()}


def agency_reworks(session: Session, provider_id: int) -> int:
    """The rework visits the agency's workers' jobs needed."""
    redone = aliased(ServiceRequest)
    query = (
        select(sa.func.count())
        .select_from(ServiceRequest)
        .join(redone, col(redone.rework_of_id) == col(ServiceRequest.id))
        .join(Worker, col(Worker.id) == col(ServiceRequest.worker_id))
        .where(Worker.provider_id == provider_id)
    )
    return int(session.exec(query).one())
