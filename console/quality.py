"""Workers' quality, for their agency (its own workers) and for supervisors and admins (every
agency's): the review list (why each is on it; cleared with a note), suspensions (no offers while
they last; suspended and lifted with a reason), and police verifications expiring or expired.
Every change is audited; the rules are dispatch/quality's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console import auth, present
from console.auth import MANAGERS, requires, runtime
from console.forms import NOTE_MAX, plain
from console.labels import N_
from dispatch import enqueue, lifecycle, quality
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import Provider, Role, VerificationStatus, Worker

bp = Blueprint("quality", __name__, url_prefix="/quality")
ROLES = (*MANAGERS, Role.PROVIDER)
NEEDS_REASON = N_("Give a reason: it is kept with the change.")


@dataclass(frozen=True)
class Expiring:
    worker: Worker
    expires: date
    days_left: int  # 0 or less: expired


def _scope() -> sa.ColumnElement[bool]:
    """A provider user sees its own agency's workers; supervisors and admins every worker."""
    if g.user.role is not Role.PROVIDER:
        return sa.true()
    return sa.false() if g.user.provider_id is None else col(Worker.provider_id) == g.user.provider_id


@bp.get("")
@requires(*ROLES)
def index() -> ResponseReturnValue:
    today, rules = present.today(), runtime().settings.workers_quality
    with Session(runtime().engine) as db:
        scoped = select(Worker).where(_scope()).order_by(col(Worker.name))
        review = list(db.exec(scoped.where(col(Worker.review_reason).is_not(None))).all())
        suspended = list(db.exec(scoped.where(col(Worker.suspended_at).is_not(None))).all())
        verified = db.exec(
            scoped.where(
                Worker.police_verification == VerificationStatus.VERIFIED,
                col(Worker.police_verified_on).is_not(None),
                col(Worker.active),
            )
        ).all()
        expiring = _expiring(
            list(verified), today, rules.police_verification_valid_days, rules.police_reminder_days_before
        )
        reworks = quality.rework_counts(db, [w.id for w in [*review, *suspended] if w.id is not None])
        agencies = dict(db.exec(select(Provider.id, Provider.name)).all())
    return render_template(
        "console/quality.html",
        review=review,
        suspended=suspended,
        expiring=expiring,
        reworks=reworks,
        agencies=agencies,
        rules=rules,
    )


def _expiring(workers: list[Worker], today: date, valid_days: int, before_days: int) -> list[Expiring]:
    """Verifications past their expiry, or within the reminder's days of it: soonest first."""
    found = []
    for worker in workers:
        expiry = quality.expires_on(worker.police_verified_on, valid_days)
        if expiry is not None and (expiry - today).days <= before_days:
            found.append(Expiring(worker, expiry, (expiry - today).days))
    return sorted(found, key=lambda e: e.expires)


def _worker(db: Session, worker_id: int) -> Worker:
    """The worker, if it exists (404) and this user's agency is theirs (403, audited)."""
    worker = db.get(Worker, worker_id, with_for_update=True)
    if worker is None:
        abort(404)
    if g.user.role is Role.PROVIDER and (g.user.provider_id is None or worker.provider_id != g.user.provider_id):
        auth.audit_refusal(AuditAction.ACCESS_REFUSED)
        abort(403)
    return worker


def _reason() -> str | None:
    return plain(request.form.get("reason", ""), NOTE_MAX) or None


def _back(worker_id: int) -> ResponseReturnValue:
    target = request.form.get("back")
    if target == "worker":
        return redirect(url_for("console.workers.worker", worker_id=worker_id))
    return redirect(url_for(".index"))


@bp.post("/workers/<id:worker_id>/clear")
@requires(*ROLES)
def clear(worker_id: int) -> ResponseReturnValue:
    """The agency looked into it: off the review list, with its note."""
    note = _reason()
    if note is None:
        flash(NEEDS_REASON)
        return _back(worker_id)
    with session_scope(runtime().engine) as db:
        _worker(db, worker_id)
        cleared = quality.clear_review(db, worker_id, note, auth.actor(), runtime().clock.now())
    flash(N_("Taken off the review list.") if cleared else N_("Not on the review list."))
    return _back(worker_id)


@bp.post("/workers/<id:worker_id>/suspend")
@requires(*ROLES)
def suspend(worker_id: int) -> ResponseReturnValue:
    """No offers and no jobs while suspended: open offers are withdrawn and jobs in hand go back to an agent."""
    reason = _reason()
    if reason is None:
        flash(NEEDS_REASON)
        return _back(worker_id)
    now, again = runtime().clock.now(), []
    with session_scope(runtime().engine) as db:
        _worker(db, worker_id)
        suspended = quality.suspend(db, worker_id, reason, auth.actor(), now)
        if suspended:
            again = lifecycle.stand_down(db, worker_id, auth.actor(), f"suspended: {reason}", now)
    enqueue.reindex_worker(runtime().redis, worker_id)
    for request_id in again:
        enqueue.dispatch_request(runtime().redis, request_id)
    flash(N_("The worker is suspended and gets no offers.") if suspended else N_("Already suspended."))
    return _back(worker_id)


@bp.post("/workers/<id:worker_id>/lift")
@requires(*ROLES)
def lift(worker_id: int) -> ResponseReturnValue:
    reason = _reason()
    if reason is None:
        flash(NEEDS_REASON)
        return _back(worker_id)
    with session_scope(runtime().engine) as db:
        _worker(db, worker_id)
        lifted = quality.lift_suspension(db, worker_id, reason, auth.actor(), runtime().clock.now())
    enqueue.reindex_worker(runtime().redis, worker_id)
    flash(N_("The suspension is lifted.") if lifted else N_("Not suspended."))
    return _back(worker_id)
