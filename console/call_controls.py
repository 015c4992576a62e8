"""The agent's controls of the call they are on, on the caller's screen: hold the caller (they
hear music) and take them back, mute and unmute themselves, transfer the caller to another
agent, to the supervisors, or back to the phone menu, and pause and resume the call's recording
(a card number, a personal matter). The rules are `callcentre.rooms`' and `callcentre.recording`'s;
this parses, checks the call is this agent's (the server refuses any other, audited), calls and renders.

The card says the call's state in words (on hold, muted) and refreshes itself (`card`), so the
controls come alive when the caller joins without a reload. After an action the page comes back
with the focus on the control that was pressed (its id in the URL's fragment, `static/console.js`).
The one Mute is the room's: it mutes the agent's leg on the platform, desk phone or browser alike."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import redis
import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from callcentre import recording, rooms
from callcentre.recording import Refused
from callcentre.rooms import Room, TransferTo
from console import auth
from console.agent import NOT_READY, STATE_NAMES
from console.auth import STAFF, requires, runtime
from console.labels import N_
from storage import agents, callqueue
from storage.agents import AgentState, AgentStatus
from storage.audit import AuditAction
from storage.models import Role, User
from telephony import call_control, webhook_url
from telephony.port import CallControl, GatewayError

log = logging.getLogger(__name__)
bp = Blueprint("call_controls", __name__, url_prefix="/calls")
NOT_YOURS = N_("You are not on this call: only the agent talking with the caller can do this.")
NOT_YET = N_("The caller is not with you yet: the controls work once you talk.")
NOT_NOW = N_("You are not on this call now: the caller has hung up, was transferred, or is with another agent.")
NO_AGENT = N_("No other agent to send the caller to.")
NO_SUPERVISOR = N_("No supervisor to send the caller to.")
REFUSED = N_("The telephony platform refused this; the call is as it was. Try again.")
REDIS_AWAY = N_("The queue cannot be read right now (Redis is unreachable).")
HELD = N_("The caller is on hold and hears music.")
MUTED = N_("You are muted: the caller does not hear you.")
TALKING = N_("You are talking with the caller.")
SENT = N_("The caller is back in the queue, offered first to whom you chose.")
TO_MENU = N_("The caller is back at the phone menu.")
RECORDING_PAUSED = N_("Recording paused: what is said now is not kept.")
RECORDING_RESUMED = N_("Recording again.")
RECORDING_REFUSED = {
    Refused.NOT_ON_THE_CALL: N_("Only the agent on this call can pause or resume its recording."),
    Refused.PAUSED_ALREADY: N_("The recording is paused already."),
    Refused.NOT_PAUSED: N_("The recording is not paused."),
    Refused.PLATFORM: N_("The telephony platform could not change the recording now. Try again."),
}


@dataclass(frozen=True)
class Recorded:
    """The call's recording, as the caller's screen shows it."""

    paused: bool
    holds: bool  # this agent is on the line with the caller: only they may pause or resume


@dataclass(frozen=True)
class Target:
    """Someone a caller may be transferred to, as the transfer list names them: their name and state."""

    user_id: int
    name: str
    state: str  # the state bar's words for their state (Ready, On a call, …)


@dataclass(frozen=True)
class Controls:
    """What the caller's screen shows of the call's controls, and why they are disabled."""

    call_sid: str
    room: Room | None
    why_not: str  # "" when the agent may act
    agents: list[Target]  # whom the caller may be sent to
    supervisors: int
    recording: Recorded | None = None  # None: agents' calls are not recorded (agents.record_calls)

    @property
    def not_yet(self) -> bool:
        """The agent's phone rings for this caller, who is not with them yet."""
        return self.why_not == NOT_YET

    @property
    def said(self) -> tuple[str, ...]:
        """The call's state in words, for the agent on it: on hold, muted, both, or talking."""
        if self.room is None or self.why_not:
            return ()
        held_or_muted = tuple(words for on, words in ((self.room.held, HELD), (self.room.muted, MUTED)) if on)
        return held_or_muted or (TALKING,)


def controls(call_sid: str) -> Controls | None:
    """The controls of `call_sid` for the signed-in agent; None when the screen is of no call."""
    user = g.get("user")
    if not call_sid or user is None or not callqueue.CALL_SID.match(call_sid):
        return None
    try:
        connection = runtime().redis
        room = rooms.held_by(connection, user.id, call_sid)
        mine = agents.status(connection, user.id)
        others = _staff(exclude=user.id)
        states = {status.user_id: status for status in agents.statuses(connection)}  # one round trip
        targets = [
            Target(u.id or 0, u.full_name or u.username, _state_words(states.get(u.id or 0, AgentStatus(u.id or 0))))
            for u in others
        ]
    except redis.RedisError:
        return Controls(call_sid, None, REDIS_AWAY, [], 0)
    supervisors = sum(1 for u in others if u.role is Role.SUPERVISOR)
    ringing = mine.holds_a_caller() and mine.call_sid == call_sid and not mine.bridged
    why_not = "" if room else NOT_YET if ringing else NOT_NOW
    return Controls(call_sid, room, why_not, targets, supervisors, _recorded(user.id, call_sid))


def _state_words(status: AgentStatus) -> str:
    if status.state is AgentState.PAUSED and not status.reason:
        return NOT_READY
    return STATE_NAMES[status.state]


@bp.get("/<call>/controls")
@requires(*STAFF)
def card(call: str) -> ResponseReturnValue:
    """The card's live part, fetched again every few seconds: it comes alive when the caller joins."""
    if not callqueue.CALL_SID.match(call):
        abort(404)
    return render_template("console/_call_controls.html", call_sid=call)


def _recorded(user_id: int, call_sid: str) -> Recorded | None:
    if not runtime().settings.agents.record_calls:
        return None
    try:
        connection = runtime().redis
        return Recorded(recording.is_paused(connection, call_sid), recording.holds(connection, user_id, call_sid))
    except redis.RedisError:
        return None


@bp.post("/<call>/hold")
@requires(*STAFF)
def hold(call: str) -> ResponseReturnValue:
    on = request.form.get("on") == "1"
    music = runtime().settings.agents.hold_music_url
    then = "call-resume" if on else "call-hold"
    return _act(call, "hold", None, lambda r, c: rooms.hold(*c, r, on, music), focus=then)


@bp.post("/<call>/mute")
@requires(*STAFF)
def mute(call: str) -> ResponseReturnValue:
    on = request.form.get("on") == "1"
    then = "call-unmute" if on else "call-mute"
    return _act(call, "mute", None, lambda r, c: rooms.mute(*c, r, on), focus=then)


@bp.post("/<call>/transfer")
@requires(*STAFF)
def transfer(call: str) -> ResponseReturnValue:
    """To another agent (`agent`: their id), the supervisors, or the phone menu."""
    try:
        to = TransferTo(request.form.get("to", ""))
    except ValueError:
        abort(400)
    settings = runtime().settings
    if to is TransferTo.MENU:
        url = webhook_url(settings, f"/voice/menu?sent={secrets.token_hex(4)}")
        return _act(call, "transfer", TO_MENU, lambda r, c: rooms.transfer_to_menu(*c, r, url))
    chosen = _targets(to)
    if not chosen:
        flash(NO_SUPERVISOR if to is TransferTo.SUPERVISORS else NO_AGENT)
        return _back(call)
    sent = callqueue.Sent(tuple(u.id or 0 for u in chosen), g.user.id, g.user.full_name or g.user.username)
    url = webhook_url(settings, "/voice/queue/connect")
    return _act(call, "transfer", SENT, lambda r, c: rooms.transfer_to_queue(*c, r, sent, to, url))


@bp.post("/<call>/recording/pause")
@requires(*STAFF)
def pause_recording(call: str) -> ResponseReturnValue:
    """The agent pauses the call's recording (a card number, a personal matter)."""
    return _recording_changed(call, pausing=True)


@bp.post("/<call>/recording/resume")
@requires(*STAFF)
def resume_recording(call: str) -> ResponseReturnValue:
    return _recording_changed(call, pausing=False)


def _recording_changed(call: str, *, pausing: bool) -> ResponseReturnValue:
    """Only the agent on the line with the caller; anyone else's is refused (audited by
    callcentre.recording, with why)."""
    helpline = runtime()
    if not callqueue.CALL_SID.match(call) or not helpline.settings.agents.record_calls:
        abort(404)
    control = call_control(helpline.settings)
    try:
        if pausing:
            refused = recording.pause(helpline.redis, helpline.engine, control, g.user.id, call)
        else:
            callback = webhook_url(helpline.settings, "/voice" + recording.callback_path(call, g.user.id))
            refused = recording.resume(helpline.redis, helpline.engine, control, g.user.id, call, callback)
        paused = recording.is_paused(helpline.redis, call)
    except redis.RedisError:
        log.exception("could not change the recording of %s", call)
        flash(REDIS_AWAY)
        return _back(call)
    flash(RECORDING_REFUSED[refused] if refused else RECORDING_PAUSED if pausing else RECORDING_RESUMED)
    return _back(call, focus="resume-recording" if paused else "pause-recording")


def _targets(to: TransferTo) -> list[User]:
    others = _staff(exclude=g.user.id)
    if to is TransferTo.SUPERVISORS:
        return [u for u in others if u.role is Role.SUPERVISOR]
    agent = request.form.get("agent", "")
    return [u for u in others if agent.isdigit() and u.id == int(agent)]


def _act(
    call: str,
    action: str,
    done: str | None,
    change: Callable[[Room, tuple[redis.Redis, sa.Engine, CallControl]], None],
    *,
    focus: str = "",
) -> ResponseReturnValue:
    """Run `change` on this agent's room of `call`; anyone else's call is refused and audited. `done`
    is flashed (None: the card's state line says it); the page comes back with the focus on `focus`."""
    if not callqueue.CALL_SID.match(call):
        abort(404)
    connection, engine = runtime().redis, runtime().engine
    try:
        room = rooms.held_by(connection, g.user.id, call)
    except redis.RedisError:
        flash(REDIS_AWAY)
        return _back(call)
    if room is None:
        auth.audit_refusal(AuditAction.ACCESS_REFUSED)
        page = render_template("console/error.html", code=403, title=N_("Forbidden"), message=NOT_YOURS)
        return page, 403
    try:
        change(room, (connection, engine, call_control(runtime().settings)))
    except GatewayError as error:
        log.warning("the platform refused to %s call %s: %s", action, call, error)
        rooms.refused(engine, room, action, error)
        flash(REFUSED)
        return _back(call)
    except redis.RedisError:
        flash(REDIS_AWAY)
        return _back(call)
    if done:
        flash(done)
    return _back(call, focus=focus)


def _back(call: str, *, focus: str = "") -> ResponseReturnValue:
    """The caller's screen again; `focus`: the id of the control to give the focus back to."""
    return redirect(url_for("console.callers.for_call", call=call) + (f"#{focus}" if focus else ""))


def _staff(exclude: int) -> list[User]:
    """Active staff other than the agent: whom a caller may be sent to."""
    with Session(runtime().engine) as db:
        found = db.exec(
            select(User).where(col(User.role).in_([r.value for r in STAFF]), User.id != exclude).order_by(User.username)
        ).all()
    return [u for u in found if u.active]
