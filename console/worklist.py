"""The telecaller worklist: finished jobs to ring the citizen about — no rating came in after
the feedback call and its SMS, a rating of `rework.threshold_rating` or less, or a problem
reported — until an agent records how the call went. The agent may record the rating the citizen
gives on the phone, and a visit needed books the job's rework (dispatch/rework), with the same
worker first or, if the citizen asks, another."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console import auth
from console.auth import STAFF, requires, runtime
from console.forms import NOTE_MAX, plain
from console.labels import N_
from core import numbers
from dispatch import enqueue, inbox, lifecycle, rework
from dispatch.jobs import UNANSWERED_FEEDBACK
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AuditEvent, Caller, RequestStatus, ServiceRequest

bp = Blueprint("worklist", __name__, url_prefix="/worklist")
NO_RATING_AFTER = timedelta(hours=2)  # the feedback call and its SMS have had their chance
SHOWN = 100
FOLLOWUP = AuditAction.REQUEST_FOLLOWUP
PROBLEM_ACTOR = "ivr:feedback"


class Outcome(StrEnum):
    RESOLVED = "resolved"  # reached; satisfied, or the issue is sorted out
    NEEDS_VISIT = "needs_visit"  # reached; a new visit is needed (a new request is filed for it)
    NO_ANSWER = "no_answer"  # not reached: stays on the list
    WRONG_NUMBER = "wrong_number"


CLOSING = frozenset({Outcome.RESOLVED, Outcome.NEEDS_VISIT, Outcome.WRONG_NUMBER})


@dataclass(frozen=True)
class Item:
    request: ServiceRequest
    why: str
    phone: str | None
    tries: int
    rework: str | None = None  # the number of its rework visit, once booked


@bp.get("")
@requires(*STAFF)
def index() -> ResponseReturnValue:
    return render_template(
        "console/worklist.html", items=_items(runtime().clock.now()), outcomes=list(Outcome), ratings=range(1, 6)
    )


def _items(now: datetime) -> list[Item]:
    with Session(runtime().engine) as db:
        closed = select(AuditEvent.entity_id).where(
            AuditEvent.entity == "service_request",
            AuditEvent.action == FOLLOWUP,
            col(AuditEvent.to_status).in_([o.value for o in CLOSING]),
        )
        problem = select(AuditEvent.entity_id).where(
            AuditEvent.entity == "service_request",
            sa.or_(
                sa.and_(
                    col(AuditEvent.action) == AuditAction.REQUEST_ESCALATED, col(AuditEvent.actor) == PROBLEM_ACTOR
                ),
                sa.and_(col(AuditEvent.action) == AuditAction.REQUEST_REWORK, col(AuditEvent.reason) == rework.PROBLEM),
            ),
        )
        unanswered = select(AuditEvent.entity_id).where(
            AuditEvent.entity == "service_request", AuditEvent.action == UNANSWERED_FEEDBACK
        )
        unrated = sa.and_(
            col(ServiceRequest.status) == RequestStatus.COMPLETED,
            col(ServiceRequest.rating).is_(None),
            sa.or_(col(ServiceRequest.completed_at) < now - NO_RATING_AFTER, col(ServiceRequest.id).in_(unanswered)),
        )
        threshold = runtime().settings.rework.threshold_rating
        low = sa.and_(col(ServiceRequest.rating).is_not(None), col(ServiceRequest.rating) <= threshold)
        reported = col(ServiceRequest.id).in_(problem)
        wanted = sa.and_(sa.or_(unrated, low, reported), col(ServiceRequest.id).not_in(closed))
        found = db.exec(
            select(ServiceRequest).where(wanted).order_by(col(ServiceRequest.completed_at).desc()).limit(SHOWN)
        ).all()
        ids = [r.id for r in found]
        reported_ids = set(db.exec(problem.where(col(AuditEvent.entity_id).in_(ids))).all()) if ids else set()
        tries = _tries(db, ids)
        reworks = {
            r.rework_of_id: r.number
            for r in db.exec(select(ServiceRequest).where(col(ServiceRequest.rework_of_id).in_(ids))).all()
        }
        phones = {
            c.id: c.phone
            for c in db.exec(
                select(Caller).where(col(Caller.id).in_([r.caller_id for r in found if r.caller_id]))
            ).all()
        }
    return [
        Item(r, _why(r, r.id in reported_ids), phones.get(r.caller_id), tries.get(r.id or 0, 0), reworks.get(r.id))
        for r in found
    ]


def _why(request: ServiceRequest, reported: bool) -> str:
    if reported:
        return N_("Problem reported")
    if request.rating is not None:
        return N_("Low rating")
    return N_("No rating after the feedback call")  # not answered, or no key pressed and no SMS reply


def _tries(db: Session, ids: list[int | None]) -> dict[int, int]:
    if not ids:
        return {}
    entity_id = col(AuditEvent.entity_id)
    query = (
        select(entity_id, sa.func.count())
        .where(AuditEvent.entity == "service_request", AuditEvent.action == FOLLOWUP, entity_id.in_(ids))
        .group_by(entity_id)
    )
    return {int(found or 0): int(count) for found, count in db.exec(query).all()}


@bp.post("/<number>")
@requires(*STAFF)
def record(number: str) -> ResponseReturnValue:
    """How the call back went, kept on the request's timeline; a closing outcome takes it off the list.
    A rating the citizen gave on the phone is saved as theirs; a visit needed books the rework."""
    raw, rating = request.form.get("outcome", ""), request.form.get("rating", "")
    note = plain(request.form.get("note", ""), NOTE_MAX) or None
    if raw not in {o.value for o in Outcome} or not numbers.is_valid(number) or rating not in {"", *"12345"}:
        flash("Choose how the call went.")
        return redirect(url_for(".index"))
    settings, now, booked = runtime().settings, runtime().clock.now(), rework.Reopened()
    with session_scope(runtime().engine) as db:
        found = db.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
        if found is None:
            flash("No such request.")
            return redirect(url_for(".index"))
        auth.audit(db, FOLLOWUP, "service_request", found.id, to_status=raw, reason=note)
        if rating and inbox.rate(db, found, int(rating), actor=auth.actor()):
            booked = rework.after_rating(
                db, found.id or 0, int(rating), settings.rework, settings.workers_quality, auth.actor(), now
            )
        if Outcome(raw) is Outcome.NEEDS_VISIT and booked.rework_id is None:
            other = request.form.get("other_worker") == "yes"
            booked = rework.problem_reported(
                db, found.id or 0, settings.rework, settings.workers_quality, auth.actor(), now, other_worker=other
            )
        if Outcome(raw) in CLOSING:
            lifecycle.close_after_follow_up(db, found.id or 0, auth.actor(), f"follow-up: {raw}", now)
    if booked.new and booked.rework_id is not None:
        enqueue.dispatch_request(runtime().redis, booked.rework_id)
        flash(f"Rework visit {booked.number} booked.")
    elif booked.error and Outcome(raw) is Outcome.NEEDS_VISIT:
        flash(booked.error)
    flash("Outcome recorded.")
    return redirect(url_for(".index"))
