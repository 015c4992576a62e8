"""The agent's own desk, on every console page of staff: their state bar (ready, on a call, wrap-up,
paused with its reason) and its timer, the pause/ready controls, and the caller offered to them,
ringing, with Accept and Pass. The rules are `callcentre.desk`'s; this parses, calls and renders."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from callcentre import desk, wrapup
from callcentre.desk import Cannot
from console import auth
from console.auth import STAFF, requires, runtime
from console.forms import parse_id, plain
from console.labels import N_
from core.settings import MISSED, SIGNED_OUT
from dispatch import enqueue
from storage import agents, callqueue
from storage.agents import AgentState, AgentStatus
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AgentCall, User
from telephony import browser_ready

log = logging.getLogger(__name__)
bp = Blueprint("agent", __name__, url_prefix="/agent")
STATE_NAMES = {
    AgentState.READY: N_("Ready"),
    AgentState.ON_CALL: N_("On a call"),
    AgentState.WRAP_UP: N_("Wrap-up"),
    AgentState.PAUSED: N_("Paused"),
}
NOT_READY = N_("Not ready")  # paused with no reason: just signed in
MISSED_NAME = N_("Missed a caller")
SIGNED_OUT_NAME = N_("Signed out")
NO_DESK_PHONE = N_("Your profile has no desk phone: ask an administrator to set one (sewamitra create-user --phone).")
REDIS_AWAY = N_("The queue cannot be read right now (Redis is unreachable).")
ON_A_CALL = N_("Finish your call first.")
GONE = N_("That caller is no longer waiting for you.")
NOBODY = N_("Nobody is waiting.")
RINGING = N_("Your desk phone is ringing; answer it to talk to the caller.")
CONNECTING = N_("Connecting you to the caller in this browser.")
CODE_FIRST = N_("Give the call a wrap-up code first.")
CODE_UNKNOWN = N_("Choose a wrap-up code from the list.")
NOTE_TOO_LONG = N_("The note is too long: at most 500 characters.")
WRAP_UP_OVER = N_("Your wrap-up of that call has ended: a supervisor can correct its code.")
CODE_KEPT = N_("Wrap-up code saved.")
SESSION_KEY = "answer_in"


class AnswerIn(StrEnum):
    """Where an agent answers the callers they take (console/softphone.py: the browser's side)."""

    BROWSER = "browser"
    DESK_PHONE = "desk_phone"


ANSWER_NAMES = {AnswerIn.BROWSER: N_("In this browser"), AnswerIn.DESK_PHONE: N_("On my desk phone")}


def answer_in() -> AnswerIn:
    """This agent's choice for this sign-in (it is about the computer they sit at: its microphone);
    in the browser by default where the platform's browser credentials are configured."""
    if not browser_ready(runtime().settings):
        return AnswerIn.DESK_PHONE
    chosen = session.get(SESSION_KEY)
    return AnswerIn(chosen) if chosen in set(AnswerIn) else AnswerIn.BROWSER


@dataclass(frozen=True)
class Bar:
    """What the state bar shows one agent."""

    agent: AgentStatus
    now: float
    offered: callqueue.Call | None = None
    offered_wait_s: int = 0
    redis_ok: bool = True
    sent: callqueue.Sent | None = None  # the offered caller was transferred: by whom

    @property
    def cannot(self) -> Cannot | None:
        return desk.why_not_take(self.agent)


def skills(user: User) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The languages (every configured one when none are set) and services a user takes calls in."""
    every = tuple(language.code for language in runtime().settings.languages)
    languages = tuple(code for code in (user.call_languages or "").split(",") if code) or every
    return languages, tuple(code for code in (user.call_services or "").split(",") if code)


def bar() -> Bar | None:
    """This agent's bar, after the desk's routing has run (offers ring, run out, wrap-ups end)."""
    user = g.get("user")
    if user is None or user.role not in STAFF:
        return None
    now = runtime().clock.now()
    connection = runtime().redis
    try:
        agents.seen(connection, user.id, now.timestamp())
        desk.route(connection, runtime().engine, runtime().settings.agents, now)
        agent = agents.status(connection, user.id)
        offered = callqueue.call(connection, agent.offer) if agent.offer else None
        wait = callqueue.wait_of(connection, agent.offer, now.timestamp()) if agent.offer else None
        sent = callqueue.sent_one(connection, agent.offer) if agent.offer else None
    except redis.RedisError:
        log.warning("Redis unreachable: the agent's state bar cannot be shown")
        return Bar(AgentStatus(user.id), now.timestamp(), redis_ok=False)
    return Bar(agent, now.timestamp(), offered, wait or 0, sent=sent)


def context() -> dict[str, Any]:
    """The template's view of the bar: names of states and reasons in the console's words."""
    reasons = runtime().settings.agents.pause_reasons
    return {
        "desk": bar(),
        "pause_reasons": reasons,
        "state_names": STATE_NAMES,
        "reason_names": {r.code: r.name(g.get("language", "en")) for r in reasons}
        | {MISSED: MISSED_NAME, SIGNED_OUT: SIGNED_OUT_NAME},
        "not_ready": NOT_READY,
        "ring_s": runtime().settings.agents.offer_ring_seconds,
    }


@bp.get("/bar")
@requires(*STAFF)
def live_bar() -> ResponseReturnValue:
    """The bar's live part, fetched again every few seconds."""
    return render_template("console/agent_bar.html", **context())


@bp.post("/ready")
@requires(*STAFF)
def ready() -> ResponseReturnValue:
    if answer_in() is AnswerIn.DESK_PHONE and not g.user.phone:
        flash(NO_DESK_PHONE)
        return _back()
    if not _may_end_wrap_up():  # ready (or paused) from wrap-up ends it: only with a code
        flash(CODE_FIRST)
        return _back()
    return _done(lambda c, e, now: desk.ready(c, e, g.user.id, skills(g.user), now))


@bp.post("/pause")
@requires(*STAFF)
def pause() -> ResponseReturnValue:
    reason = request.form.get("reason", "")
    if reason not in {r.code for r in runtime().settings.agents.pause_reasons}:
        flash(N_("Choose a reason to pause."))
        return _back()
    if not _may_end_wrap_up():
        flash(CODE_FIRST)
        return _back()
    return _done(lambda c, e, now: desk.pause(c, e, g.user.id, reason, now))


@bp.post("/wrap-up/end")
@requires(*STAFF)
def end_wrap_up() -> ResponseReturnValue:
    """Wrap-up ended early: only once the call has its wrap-up code."""
    if not _may_end_wrap_up():
        flash(CODE_FIRST)
        return _back()
    return _done(lambda c, e, now: desk.end_wrap_up(c, e, g.user.id, now), quiet=True)


@bp.post("/pass")
@requires(*STAFF)
def let_pass() -> ResponseReturnValue:
    call_sid = request.form.get("call", "")[:40]
    return _done(lambda c, e, now: desk.let_pass(c, e, g.user.id, call_sid, now), quiet=True)


@bp.post("/accept")
@requires(*STAFF)
def accept() -> ResponseReturnValue:
    """The agent accepts the caller offered to them: claimed, and their desk phone rings."""
    call_sid = request.form.get("call", "")[:40]
    return take(call_sid if callqueue.CALL_SID.match(call_sid) else "-")


def take(call_sid: str | None) -> ResponseReturnValue:
    """The agent takes `call_sid` (offered to them) or the next caller they can serve; their desk
    phone rings (in the browser: its softphone connects) and the caller's screen opens. Refused unless
    they are ready and hold no caller."""
    in_browser = answer_in() is AnswerIn.BROWSER
    if not in_browser and not g.user.phone:
        flash(NO_DESK_PHONE)
        return _back()
    connection, now = runtime().redis, runtime().clock.now()
    try:
        taken, cannot = desk.take(connection, runtime().engine, g.user.id, call_sid, now)
        rung = in_browser or taken is None or enqueue.ring_agent(connection, g.user.id, g.user.phone, taken.call_sid)
        if taken is not None and not rung:
            desk.leg_ended(connection, runtime().engine, g.user.id, runtime().settings.agents, now)
            flash(REDIS_AWAY)
            return _back()
    except redis.RedisError:  # a lock not had in time is a RedisError too
        log.exception("could not take a caller")
        flash(REDIS_AWAY)
        return _back()
    if taken is None:
        flash(_why(cannot, call_sid))
        return _back()
    with session_scope(runtime().engine) as db:
        auth.audit(
            db, AuditAction.QUEUE_TAKEN, "call", None, call_sid=taken.call_sid, waited_s=taken.wait_s(now.timestamp())
        )
    flash(CONNECTING if in_browser else RINGING)
    return redirect(url_for("console.callers.for_call", call=taken.call_sid))


def _why(cannot: Cannot | None, call_sid: str | None) -> str:
    if cannot is Cannot.NOBODY:
        return GONE if call_sid else NOBODY
    return (
        {
            Cannot.ON_CALL: N_("You are on a call."),
            Cannot.WRAP_UP: N_("You are in wrap-up: end it to take the next caller."),
            Cannot.PAUSED: N_("You are paused: press Ready to take callers."),
        }.get(cannot, NOBODY)
        if cannot
        else NOBODY
    )


def _done(change: Any, *, quiet: bool = False) -> ResponseReturnValue:
    try:
        changed = change(runtime().redis, runtime().engine, runtime().clock.now())
    except redis.RedisError:
        log.exception("could not change the agent's state")
        flash(REDIS_AWAY)
        return _back()
    if not changed and not quiet:
        flash(ON_A_CALL)
    return _back()


def _back() -> ResponseReturnValue:
    """Back to the page the agent was on (a path of the console only), else the live queue."""
    came_from = urlsplit(request.referrer or "")
    back = came_from.path + (f"?{came_from.query}" if came_from.query else "")
    ours = came_from.netloc in ("", request.host) and auth.local_path(back) == back
    return redirect(back if ours and back.startswith("/console/") else url_for("console.queue.live"))


def clock_time(seconds: int) -> str:
    """A timer as the bar shows it: 0:42, 12:05, 1:02:03 (the script ticks it on in the same form)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


# -- wrap-up codes (callcentre.wrapup): the form in the bar while the agent is in wrap-up ------------


def wrap_up_form(agent: AgentStatus) -> dict[str, Any]:
    """The wrap-up form's view for the bar's agent: the call being wrapped up (None: not on record)
    and the codes."""
    with session_scope(runtime().engine) as db:
        call = wrapup.wrapping_up(db, agent)
        if call is not None:
            db.expunge(call)
    return {"call": call, "dispositions": runtime().settings.agents.dispositions}


@bp.post("/wrap-up")
@requires(*STAFF)
def give_code() -> ResponseReturnValue:
    """The agent gives (or corrects) the code of the call they are wrapping up; "end" ends wrap-up too."""
    code = request.form.get("code", "")
    note = plain(request.form.get("note", ""), wrapup.NOTE_MAX + 1)  # longer: refused, not cut
    settings = runtime().settings.agents
    now = runtime().clock.now()
    try:
        agent = agents.status(runtime().redis, g.user.id)
    except redis.RedisError:
        log.exception("could not read the agent's state")
        flash(REDIS_AWAY)
        return _back()
    with session_scope(runtime().engine) as db:
        call = db.get(AgentCall, parse_id(request.form.get("call")) or 0)
        if call is None:
            abort(404)
        codes = frozenset(d.code for d in settings.dispositions)
        refused = wrapup.refusal(call, agent, code, note, codes, supervisor=False)
        if refused is wrapup.Refused.NOT_YOURS:
            auth.audit_refusal(AuditAction.ACCESS_REFUSED)
            abort(403)
        if refused is not None:
            flash(REFUSALS[refused])
            return _back()
        wrapup.give(db, call, code, note, auth.actor(), now)
    if request.form.get("then") == "end":
        return _done(lambda c, e, at: desk.end_wrap_up(c, e, g.user.id, at), quiet=True)
    flash(CODE_KEPT)
    return _back()


REFUSALS = {
    wrapup.Refused.UNKNOWN_CODE: CODE_UNKNOWN,
    wrapup.Refused.NOTE_TOO_LONG: NOTE_TOO_LONG,
    wrapup.Refused.WRAP_UP_OVER: WRAP_UP_OVER,
}


def _may_end_wrap_up() -> bool:
    try:
        agent = agents.status(runtime().redis, g.user.id)
    except redis.RedisError:
        return True  # the desk cannot be read either: _done says so
    with session_scope(runtime().engine) as db:
        return wrapup.may_end(db, agent)
