"""A supervisor's phone on an agent's call, as the platform runs it: the helpline rang it from the
wall of agents (dispatch.jobs.ring_supervisor); a key press proves it is the supervisor, not
voicemail; then it joins the caller's conference room (`callcentre.rooms.room_of`) in the mode they
chose: muted to listen, coaching the agent's leg to whisper, heard by all to barge. Their leg neither
ends the room nor beeps in it; the room's callback learns its member id (Plivo's), for a switch.
Its end (the hangup's status callback) ends the session.

Served under /<platform>/voice/monitor. Whatever fails, the platform gets a valid document."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, request
from sqlmodel import Session
from werkzeug.exceptions import HTTPException

from callcentre import monitoring
from callcentre.rooms import room_of
from ivr import calllog
from ivr.voice import ROOM_EVENT_PATH, _answered, _ivr, _path, _runtime, _said, _turn
from storage import monitoring as sessions
from storage.models import User
from storage.monitoring import Mode
from telephony import webhook_signed
from telephony.call import Conference, Gather, Hangup

log = logging.getLogger(__name__)
bp = Blueprint("monitor", __name__)
INTRO = {Mode.LISTEN: "monitor_listen", Mode.WHISPER: "monitor_whisper", Mode.BARGE: "monitor_barge"}


def _session_id() -> str:
    return request.args.get("session", "")[:32]


def _session() -> sessions.Session | None:
    return sessions.load(_runtime().redis, _session_id())


def _language(session: sessions.Session | None) -> str:
    """The supervisor's console language, else the helpline's first."""
    default: str = _runtime().settings.languages[0].code
    if session is None:
        return default
    with Session(_runtime().engine) as db:
        supervisor = db.get(User, session.supervisor_id)
    return (supervisor.language if supervisor else None) or default


@bp.post("")
@webhook_signed
def picked_up() -> Response:
    """The supervisor's phone answered: press 1 to join the agent's call."""
    session = _session()
    language = _language(session)
    if session is None or monitoring.live_call(_runtime().redis, session.agent_id) != session.call_sid:
        return _answered(_said("monitor_call_over", language), Hangup())
    ask = Gather(
        (_said(INTRO[session.mode], language),),
        _path(f"/monitor/answer?session={session.session_id}"),
        timeout=8,
        finish_on_key="",
        num_digits=1,
    )
    return _answered(ask, _said("monitor_not_taken", language), Hangup())


@bp.post("/answer")
@webhook_signed
def answer() -> Response:
    """The supervisor pressed 1: into the caller's room, in their mode, while the call is live."""
    session = _session()
    language = _language(session)
    if _turn().digits != "1" or session is None:
        return _answered(_said("monitor_not_taken", language), Hangup())
    runtime = _runtime()
    joined = monitoring.joined(runtime.redis, runtime.engine, session.session_id, _turn().call_id, runtime.clock.now())
    if joined is None:
        return _answered(_said("monitor_call_over", language), Hangup())
    mode = joined.mode if _ivr().platform.coaching or joined.mode is not Mode.WHISPER else Mode.LISTEN
    muted, coach = monitoring.participant(mode, monitoring.agent_leg(runtime.redis, joined))
    room = Conference(
        room_of(joined.call_sid), muted=muted, coach=coach, ends_room=False, beep=False, callback=_path(ROOM_EVENT_PATH)
    )
    return _answered(room, _said("monitor_call_over", language), Hangup())


@bp.post("/status")
@webhook_signed
def status() -> Response:
    """The supervisor's phone hung up, or never answered: the session is over."""
    if _turn().status in calllog.FINAL:
        runtime = _runtime()
        try:
            monitoring.ended(runtime.redis, runtime.engine, _session_id(), runtime.clock.now())
        except redis.RedisError:
            log.warning("could not end monitoring session %s", _session_id())
    return Response(status=204)


@bp.errorhandler(Exception)
def failed(error: Exception) -> Response | HTTPException:
    """Never a 500 to the platform: the supervisor hears an apology and their call ends."""
    if isinstance(error, HTTPException):
        return error
    log.exception("monitoring webhook failed", exc_info=error)
    if request.endpoint == "monitor.status":
        return Response(status=204)
    return _answered(_said("technical_problem", "en"), Hangup())
