"""An agent's call back to a caller of the callback list, as the platform runs it (click-to-call):
the helpline rang the agent's own phone (dispatch.jobs.ring_agent_for_callback); a key press proves
it is the agent, not voicemail; then a Dial to the caller with the helpline's number as caller ID.
The caller's number is looked up at that moment (dispatch.callbacks) and goes to the platform
only. The Dial's action keeps how the caller's leg ended, which pre-fills the try's outcome on the
console; the agent confirms it there. The shape of ivr/officer.py, without the recording.

Served under /<platform>/voice/callback. Whatever fails, the platform gets a valid document."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from sqlmodel import Session
from werkzeug.exceptions import HTTPException

from core.ids import parse_id
from dispatch import callbacks
from ivr import calllog
from ivr.voice import DIAL_OUTCOMES, _answered, _path, _runtime, _said, _turn
from storage.db import session_scope
from storage.models import CallbackAttempt, User
from telephony import our_number, webhook_signed
from telephony.call import DialNumber, Gather, Hangup

log = logging.getLogger(__name__)
bp = Blueprint("callback_call", __name__)


def _attempt_id() -> int:
    return parse_id(request.args.get("attempt")) or 0


def _language(attempt_id: int) -> str:
    """The agent's console language, else the helpline's first."""
    with Session(_runtime().engine) as session:
        attempt = session.get(CallbackAttempt, attempt_id)
        agent = session.get(User, attempt.user_id) if attempt else None
    default: str = _runtime().settings.languages[0].code
    return (agent.language if agent else None) or default


@bp.post("")
@webhook_signed
def picked_up() -> Response:
    """The agent's phone answered: press 1 to call the caller back."""
    attempt_id = _attempt_id()
    language = _language(attempt_id)
    with Session(_runtime().engine) as session:
        dialling = callbacks.to_dial(session, attempt_id)
    if dialling is None:
        return _answered(_said("callback_call_closed", language), Hangup())
    ask = Gather(
        (_said("callback_call_intro", language),),
        _path(f"/callback/answer?attempt={attempt_id}"),
        timeout=8,
        finish_on_key="",
        num_digits=1,
    )
    return _answered(ask, _said("callback_not_taken", language), Hangup())


@bp.post("/answer")
@webhook_signed
def answer() -> Response:
    """The agent pressed 1: the Dial to the caller, their number looked up now."""
    attempt_id = _attempt_id()
    language = _language(attempt_id)
    if _turn().digits != "1":
        return _answered(_said("callback_not_taken", language), Hangup())
    with Session(_runtime().engine) as session:
        dialling = callbacks.to_dial(session, attempt_id)
    caller_id = our_number(_runtime().settings)
    if dialling is None or caller_id is None:
        return _answered(_said("callback_call_closed", language), Hangup())
    _attempt, number = dialling
    dial = DialNumber(
        number,
        caller_id,
        _path(f"/callback/dialled?attempt={attempt_id}"),
        callbacks.TALK_LIMIT_S,
        callbacks.RING_CALLER_S,
    )
    return _answered(_said("callback_connecting", language), dial)


@bp.post("/dialled")
@webhook_signed
def dialled() -> Response:
    """The Dial's action: how the caller's leg ended, kept on the try for the agent to confirm."""
    attempt_id = _attempt_id()
    language = _language(attempt_id)
    outcome = DIAL_OUTCOMES.get(_turn().dial_status, "failed")
    with session_scope(_runtime().engine) as session:
        callbacks.dial_ended(session, attempt_id, outcome)
    said = "callback_call_ended" if outcome == "completed" else "callback_caller_unanswered"
    return _answered(_said(said, language), Hangup())


@bp.post("/status")
@webhook_signed
def status() -> Response:
    """The status callback of the agent's own leg: not picked up, the try is void (the caller was
    never rung); any other end changes nothing (the Dial's action said how the caller's leg went)."""
    if _turn().status in calllog.UNANSWERED:
        with session_scope(_runtime().engine) as session:
            callbacks.dial_ended(session, _attempt_id(), callbacks.AGENT_UNANSWERED)
    return Response(status=204)


@bp.errorhandler(Exception)
def failed(error: Exception) -> Response | HTTPException:
    """Never a 500 to the platform: the agent hears an apology and the call ends."""
    if isinstance(error, HTTPException):
        return error
    log.exception("callback call webhook failed", exc_info=error)
    if request.endpoint == "callback_call.status":
        return Response(status=204)
    return _answered(_said("technical_problem", "en"), Hangup())
