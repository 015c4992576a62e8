"""The callback list: callers owed a call back (asked for one, or hung up in the queue), soonest due
first, each with its reason, language, tries (n of `agents.callback_max_attempts`), owner, last
outcome and note; an agent takes one ("mine"), calls through the helpline ("Call now": their own
phone rung, then the caller, whose number they never see) and confirms each try's outcome and note.
The screens of `dispatch.callbacks`."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session

from console.auth import STAFF, requires, runtime
from console.forms import NOTE_MAX, plain
from console.labels import N_
from dispatch import callbacks, enqueue
from dispatch.callbacks import Refusal
from storage.db import session_scope
from storage.models import CallbackOutcome, User

bp = Blueprint("callbacks", __name__, url_prefix="/callbacks")
SHOWN = 100  # a working list, not an archive
REFUSALS = {
    Refusal.CLOSED: N_("That callback is already closed."),
    Refusal.NOT_YOURS: N_("Another agent has taken that callback."),
    Refusal.NO_AGENT_PHONE: N_("Your user has no phone number to ring: ask an admin to add your desk phone."),
    Refusal.NO_CALLER_PHONE: N_("This caller's number cannot be rung: it was withheld or erased."),
    Refusal.CALL_OPEN: N_("Confirm the outcome of the last call first."),
}
OUTCOMES = tuple(CallbackOutcome)
LABELS = {
    CallbackOutcome.REACHED: N_("Reached"),
    CallbackOutcome.NO_ANSWER: N_("No answer"),
    CallbackOutcome.BUSY: N_("Busy"),
    CallbackOutcome.WRONG_NUMBER: N_("Wrong number"),
}


@bp.get("")
@requires(*STAFF)
def index() -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        rows = callbacks.listing(db, SHOWN)
    return render_template(
        "console/callbacks.html",
        rows=rows,
        outcomes=OUTCOMES,
        labels=LABELS,
        max_attempts=runtime().settings.agents.callback_max_attempts,
    )


@bp.post("/<id:callback_id>/take")
@requires(*STAFF)
def take(callback_id: int) -> ResponseReturnValue:
    """The agent makes the callback theirs."""
    with session_scope(runtime().engine) as db:
        refused = callbacks.take(db, callback_id, g.user.id)
    flash(REFUSALS[refused] if refused else N_("The callback is yours."))
    return redirect(url_for(".index"))


@bp.post("/<id:callback_id>/call")
@requires(*STAFF)
def call_now(callback_id: int) -> ResponseReturnValue:
    """Ring the agent's own phone, then put them through to the caller with the helpline's number."""
    with session_scope(runtime().engine) as db:
        agent = db.get(User, g.user.id) or abort(403)
        placed = callbacks.place(db, callback_id, agent, runtime().clock.now())
        attempt_id = placed.id if not isinstance(placed, Refusal) else None
    if attempt_id is None:
        assert isinstance(placed, Refusal)
        flash(REFUSALS[placed])
        return redirect(url_for(".index"))
    enqueue.ring_agent_for_callback(runtime().redis, attempt_id)
    flash(N_("Your phone rings now: pick up and press 1 to be put through to the caller."))
    return redirect(url_for(".index"))


@bp.post("/<id:callback_id>/outcome")
@requires(*STAFF)
def outcome(callback_id: int) -> ResponseReturnValue:
    """One try's outcome and note, confirmed by the agent."""
    chosen = request.form.get("outcome", "")
    if chosen not in {o.value for o in OUTCOMES}:
        flash(N_("Choose how the call went: reached, no answer, busy or wrong number."))
        return redirect(url_for(".index"))
    note = plain(request.form.get("note", ""), NOTE_MAX) or None
    answer = (CallbackOutcome(chosen), note)
    with session_scope(runtime().engine) as db:
        refused = callbacks.record_outcome(
            db, callback_id, g.user.id, answer, runtime().settings.agents, runtime().clock.now()
        )
    flash(REFUSALS[refused] if refused else N_("Outcome recorded."))
    return redirect(url_for(".index"))
