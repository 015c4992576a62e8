"""The agent's controls of the call they are on, on the caller's screen: hold the caller (they
hear music) and take them back, mute and unmute themselves, and transfer the caller to another
agent, to the supervisors, or back to the phone menu. The rules are `callcentre.rooms`'; this
parses, checks the call is this agent's (the server refuses any other, audited), calls and renders."""

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

from callcentre import rooms
from callcentre.rooms import Room, TransferTo
from console import auth
from console.auth import STAFF, requires, runtime
from console.labels import N_
from storage import callqueue
from storage.audit import AuditAction
from storage.models import Role, User
from telephony import call_control, webhook_url
from telephony.port import CallControl, GatewayError

log = logging.getLogger(__name__)
bp = Blueprint("call_controls", __name__, url_prefix="/calls")
NOT_YOURS = N_("You are not on this call: only the agent talking with the caller can do this.")
NOT_YET = N_("The caller is not with you yet: the controls work once you talk.")
NO_AGENT = N_("No other agent to send the caller to.")
NO_SUPERVISOR = N_("No supervisor to send the caller to.")
REFUSED = N_("The telephony platform refused this; the call is as it was. Try again.")
REDIS_AWAY = N_("The queue cannot be read right now (Redis is unreachable).")
HELD = N_("The caller is on hold and hears music.")
RESUMED = N_("The caller is back with you.")
MUTED = N_("You are muted: the caller does not hear you.")
UNMUTED = N_("The caller hears you again.")
SENT = N_("The caller is back in the queue, offered first to whom you chose.")
TO_MENU = N_("The caller is back at the phone menu.")


@dataclass(frozen=True)
class Controls:
    """What the caller's screen shows of the call's controls, and why they are disabled."""

    call_sid: str
    room: Room | None
    why_not: str  # "" when the agent may act
    agents: list[User]  # whom the caller may be sent to
    supervisors: int


def controls(call_sid: str) -> Controls | None:
    """The controls of `call_sid` for the signed-in agent; None when the screen is of no call."""
    user = g.get("user")
    if not call_sid or user is None or not callqueue.CALL_SID.match(call_sid):
        return None
    try:
        room = rooms.held_by(runtime().redis, user.id, call_sid)
    except redis.RedisError:
        return Controls(call_sid, None, REDIS_AWAY, [], 0)
    others = _staff(exclude=user.id)
    supervisors = sum(1 for u in others if u.role is Role.SUPERVISOR)
    return Controls(call_sid, room, "" if room else NOT_YET, others, supervisors)


@bp.post("/<call>/hold")
@requires(*STAFF)
def hold(call: str) -> ResponseReturnValue:
    on = request.form.get("on") == "1"
    music = runtime().settings.agents.hold_music_url
    return _act(call, "hold", HELD if on else RESUMED, lambda r, c: rooms.hold(*c, r, on, music))


@bp.post("/<call>/mute")
@requires(*STAFF)
def mute(call: str) -> ResponseReturnValue:
    on = request.form.get("on") == "1"
    return _act(call, "mute", MUTED if on else UNMUTED, lambda r, c: rooms.mute(*c, r, on))


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
    sent = callqueue.Sent(tuple(u.id or 0 for u in chosen), g.user.id, g.user.username)
    url = webhook_url(settings, "/voice/queue/connect")
    return _act(call, "transfer", SENT, lambda r, c: rooms.transfer_to_queue(*c, r, sent, to, url))


def _targets(to: TransferTo) -> list[User]:
    others = _staff(exclude=g.user.id)
    if to is TransferTo.SUPERVISORS:
        return [u for u in others if u.role is Role.SUPERVISOR]
    agent = request.form.get("agent", "")
    return [u for u in others if agent.isdigit() and u.id == int(agent)]


def _act(
    call: str, action: str, done: str, change: Callable[[Room, tuple[redis.Redis, sa.Engine, CallControl]], None]
) -> ResponseReturnValue:
    """Run `change` on this agent's room of `call`; anyone else's call is refused and audited."""
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
    flash(done)
    return _back(call)


def _back(call: str) -> ResponseReturnValue:
    return redirect(url_for("console.callers.for_call", call=call))


def _staff(exclude: int) -> list[User]:
    """Active staff other than the agent: whom a caller may be sent to."""
    with Session(runtime().engine) as db:
        found = db.exec(
            select(User).where(col(User.role).in_([r.value for r in STAFF]), User.id != exclude).order_by(User.username)
        ).all()
    return [u for u in found if u.active]
