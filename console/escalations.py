"""Escalations: the requests that climbed the escalation ladder (dispatch/ladder), for the people of
their rung: a district officer those of their districts at a district officer's rung, a state
officer every district's at theirs, supervisors and admins every rung. On a request's page an
officer (or an agent) calls the citizen through the helpline, recorded, and then closes the request
with an outcome and a note; the close stays refused until such a call exists at the current rung.
The recording is played here from the platform, as the spoken address is (console/recordings)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console import auth, labels, recordings
from console.auth import MANAGERS, OFFICERS, STAFF, requires, runtime
from console.forms import NOTE_MAX, plain
from console.labels import N_
from console.scope import request_in_scope as _request
from console.scope import visible
from core.settings import Escalation
from dispatch import citizen_calls, enqueue, ladder
from storage.db import session_scope
from storage.models import RequestStatus, ServiceRequest, User

log = logging.getLogger(__name__)
bp = Blueprint("escalations", __name__)
SHOWN = 200
# Why the close is refused, or the call cannot be placed, in the console's words (the catalogue's Hindi).
REFUSALS = {
    ladder.Refusal.NOT_ESCALATED: N_("This request has not climbed the escalation ladder."),
    ladder.Refusal.NOT_OPEN: N_("This request is no longer open."),
    ladder.Refusal.NO_CALL: N_("Call the citizen first: closing needs an answered, recorded call at this level."),
    ladder.Refusal.UNKNOWN_OUTCOME: N_("Choose an outcome from the list."),
    ladder.Refusal.NO_NOTE: N_("Write a note on what the citizen said."),
    citizen_calls.NoCall.NOT_ESCALATED: N_("This request has not climbed the escalation ladder."),
    citizen_calls.NoCall.NOT_OPEN: N_("This request is no longer open."),
    citizen_calls.NoCall.NO_OFFICER_PHONE: N_("Your user has no phone to ring: ask an admin to add it."),
    citizen_calls.NoCall.NO_CITIZEN_PHONE: N_("The citizen has no phone number on file."),
}
ACTING = (*STAFF, *OFFICERS)


@dataclass(frozen=True)
class Row:
    request: ServiceRequest
    level: str
    since: datetime


@bp.get("/escalations")
@requires(*MANAGERS, *OFFICERS)
def index() -> ResponseReturnValue:
    """The open requests at the user's rung, the longest there first."""
    rungs = runtime().settings.escalation
    with Session(runtime().engine) as db:
        found = db.exec(
            select(ServiceRequest)
            .where(_at_my_rung(rungs), col(ServiceRequest.status).in_(ladder.UNRESOLVED), visible())
            .order_by(sa.func.coalesce(col(ServiceRequest.escalation_level_at), col(ServiceRequest.created_at)))
            .limit(SHOWN)
        ).all()
    language = labels.language()
    rows = [Row(r, rungs.level(r.escalation_level).name(language), ladder.reached_at(r)) for r in found]
    return render_template("console/escalations.html", rows=rows)


def _at_my_rung(rungs: Escalation) -> sa.ColumnElement[bool]:
    """Past the first rung; for an officer, the rungs whose people they are."""
    climbed = col(ServiceRequest.escalation_level) > ladder.FIRST
    if g.user.role in MANAGERS:
        return climbed
    mine_rungs = [number for number, level in enumerate(rungs.levels, start=1) if level.who == g.user.role.value]
    return sa.and_(climbed, col(ServiceRequest.escalation_level).in_(mine_rungs))


def panel(db: Session, found: ServiceRequest) -> dict[str, object]:
    """What the request page shows of the ladder: the rung, the calls to the citizen, whether the
    request may be closed (and why not), the outcomes."""
    rungs = runtime().settings.escalation
    refusal = ladder.why_not_closable(db, found)
    return {
        "level": rungs.level(found.escalation_level),
        "level_number": found.escalation_level,
        "climbed": found.escalation_level > ladder.FIRST,
        "calls": citizen_calls.calls_of(db, found.id or 0),
        "close_refusal": REFUSALS[refusal] if refusal else None,
        "outcomes": rungs.close_outcomes,
        "call_recording": citizen_calls.recording_of(db, found),
        "may_act": g.user.role in ACTING,
    }


@bp.post("/requests/<number>/call-citizen")
@requires(*ACTING)
def call_citizen(number: str) -> ResponseReturnValue:
    """Ring the officer's own phone, then put them through to the citizen, recorded."""
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        officer = db.get(User, g.user.id) or abort(403)
        placed = citizen_calls.place(db, found, officer, runtime().clock.now())
        call_id = placed.id if not isinstance(placed, citizen_calls.NoCall) else None
    if call_id is None:
        assert isinstance(placed, citizen_calls.NoCall)
        flash(REFUSALS[placed])
        return redirect(url_for("console.requests.show", number=number))
    enqueue.ring_officer(runtime().redis, call_id)
    flash(N_("Your phone rings now: pick up and press 1 to be put through to the citizen."))
    return redirect(url_for("console.requests.show", number=number))


@bp.post("/requests/<number>/close-escalation")
@requires(*ACTING)
def close(number: str) -> ResponseReturnValue:
    """Close a request that climbed, with the outcome and a note, after the recorded call."""
    outcome = request.form.get("outcome", "")[:40]
    note = plain(request.form.get("note", ""), NOTE_MAX)
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        in_hand = found.worker_id if found.status is RequestStatus.ASSIGNED else None
        refusal = ladder.close(
            db, found.id or 0, runtime().settings.escalation, outcome, note, auth.actor(), runtime().clock.now()
        )
    if refusal is not None:
        flash(REFUSALS[refusal])
        return redirect(url_for("console.requests.show", number=number))
    if in_hand is not None:  # a job closed in hand: the worker need not go, and is free for others
        enqueue.job_closed(runtime().redis, found.id or 0, in_hand)
    flash(N_("Closed."))
    return redirect(url_for("console.requests.show", number=number))


@bp.get("/requests/<number>/citizen-call.mp3")
@requires(*ACTING)
def recording(number: str) -> Response:
    """The recorded call that lets the request close, streamed from its platform; audited."""
    with Session(runtime().engine) as db:
        found = _request(db, number)
        kept = citizen_calls.recording_of(db, found)
    if kept is None:
        abort(404)
    return recordings.played(kept)
