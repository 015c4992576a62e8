"""An agent's call in the console: its page (who talked to the caller, and the recordings, played
through the helpline by staff only, each playing audited), and the recording paused and resumed from
the caller's screen by the agent on the call. The rules are `callcentre.recording`'s."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from callcentre import recording
from callcentre.recording import Refused
from console.auth import STAFF, requires, runtime
from console.labels import N_
from console.recordings import played
from storage import callqueue
from storage.models import AgentCall, Recording, RecordingKind, User
from telephony import telephony, webhook_url

log = logging.getLogger(__name__)
bp = Blueprint("calls", __name__, url_prefix="/calls")
PAUSED = N_("Recording paused: what is said now is not kept.")
RESUMED = N_("Recording again.")
REFUSALS = {
    Refused.NOT_ON_THE_CALL: N_("Only the agent on this call can pause or resume its recording."),
    Refused.PAUSED_ALREADY: N_("The recording is paused already."),
    Refused.NOT_PAUSED: N_("The recording is not paused."),
    Refused.PLATFORM: N_("The telephony platform could not change the recording now. Try again."),
}
REDIS_AWAY = N_("The call's state cannot be read right now (Redis is unreachable).")


@dataclass(frozen=True)
class Controls:
    """What the caller's screen shows of the call's recording."""

    call_sid: str
    paused: bool
    holds: bool  # this user is on the line with the caller: only they may pause or resume


def controls(call_sid: str) -> Controls | None:
    """The recording's controls for the caller on `call_sid`, for the signed-in user; None when agents'
    calls are not recorded or there is no call."""
    if not runtime().settings.agents.record_calls or not callqueue.CALL_SID.match(call_sid or ""):
        return None
    try:
        connection = runtime().redis
        return Controls(
            call_sid, recording.is_paused(connection, call_sid), recording.holds(connection, g.user.id, call_sid)
        )
    except redis.RedisError:
        return None


@bp.get("/<call>")
@requires(*STAFF)
def show(call: str) -> ResponseReturnValue:
    """The call's page: the agents who talked to the caller, and the recordings kept."""
    if not callqueue.CALL_SID.match(call):
        abort(404)
    with Session(runtime().engine) as db:
        talks = db.exec(
            select(AgentCall, User)
            .join(User, col(User.id) == AgentCall.agent_id)
            .where(AgentCall.call_sid == call)
            .order_by(col(AgentCall.answered_at))
        ).all()
        kept = db.exec(
            select(Recording, User)
            .join(User, col(User.id) == Recording.agent_id)
            .where(Recording.call_sid == call, Recording.kind == RecordingKind.AGENT_CALL)
            .where(col(Recording.erased_at).is_(None), Recording.url != "")
            .order_by(col(Recording.created_at), col(Recording.id))
        ).all()
    if not talks and not kept:
        abort(404)
    return render_template("console/call.html", call_sid=call, talks=talks, kept=kept, controls=controls(call))


@bp.get("/<call>/recordings/<int:recording_id>.mp3")
@requires(*STAFF)
def audio(call: str, recording_id: int) -> ResponseReturnValue:
    """A recording of the call, streamed by the helpline (console.recordings.played: audited)."""
    with Session(runtime().engine) as db:
        found = db.get(Recording, recording_id)
    if found is None or found.call_sid != call or found.kind is not RecordingKind.AGENT_CALL:
        abort(404)
    if found.erased_at is not None or not found.url:
        abort(404)
    return played(found)


@bp.post("/<call>/recording/pause")
@requires(*STAFF)
def pause(call: str) -> ResponseReturnValue:
    """The agent pauses the recording (a card number, a personal matter)."""
    return _changed(call, pausing=True)


@bp.post("/<call>/recording/resume")
@requires(*STAFF)
def resume(call: str) -> ResponseReturnValue:
    return _changed(call, pausing=False)


def _changed(call: str, *, pausing: bool) -> ResponseReturnValue:
    if not callqueue.CALL_SID.match(call) or not runtime().settings.agents.record_calls:
        abort(404)
    helpline = runtime()
    gateway = telephony(helpline.settings)
    try:
        if pausing:
            refused = recording.pause(helpline.redis, helpline.engine, gateway, g.user.id, call)
        else:
            callback = webhook_url(helpline.settings, "/voice" + recording.callback_path(call, g.user.id))
            refused = recording.resume(helpline.redis, helpline.engine, gateway, g.user.id, call, callback)
    except redis.RedisError:
        log.exception("could not change the recording of %s", call)
        flash(REDIS_AWAY)
        return redirect(url_for("console.callers.for_call", call=call))
    flash(REFUSALS[refused] if refused else PAUSED if pausing else RESUMED)
    return redirect(url_for("console.callers.for_call", call=call))
