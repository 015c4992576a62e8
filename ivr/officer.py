"""An officer's call to the citizen of an escalated request, as the platform runs it: the helpline
rang the officer's own phone (dispatch.jobs.ring_officer); a key press proves it is the officer, not
voicemail; then a recorded Dial to the citizen with the helpline's number as caller ID. The
citizen's number is looked up at that moment (dispatch.citizen_calls) and goes to the platform
only. The Dial's action records how the citizen's leg went; the platform's recording callback
(Twilio's recordingStatusCallback, Plivo's Record callbackUrl) keeps the recording.

Served under /<platform>/voice/officer. Whatever fails, the platform gets a valid document."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from sqlmodel import Session
from werkzeug.exceptions import HTTPException

from core.ids import parse_id
from dispatch import citizen_calls
from ivr import calllog
from ivr.voice import DIAL_OUTCOMES, _answered, _ivr, _path, _runtime, _said, _turn
from storage.db import session_scope
from storage.models import CitizenCall, ServiceRequest, User
from telephony import our_number, webhook_signed
from telephony.call import DialNumber, Gather, Hangup

log = logging.getLogger(__name__)
bp = Blueprint("officer", __name__)


def _call_id() -> int:
    return parse_id(request.args.get("call")) or 0


def _language(call_id: int) -> str:
    """The officer's console language, else the helpline's first."""
    with Session(_runtime().engine) as session:
        call = session.get(CitizenCall, call_id)
        officer = session.get(User, call.user_id) if call else None
    default: str = _runtime().settings.languages[0].code
    return (officer.language if officer else None) or default


@bp.post("")
@webhook_signed
def picked_up() -> Response:
    """The officer's phone answered: press 1 to call the citizen of the request."""
    call_id = _call_id()
    language = _language(call_id)
    with Session(_runtime().engine) as session:
        call = session.get(CitizenCall, call_id)
        found = session.get(ServiceRequest, call.request_id) if call else None
    if found is None:
        return _answered(_said("officer_call_closed", language), Hangup())
    ask = Gather(
        (_said("officer_call_intro", language, number=" ".join(found.number)),),
        _path(f"/officer/answer?call={call_id}"),
        timeout=8,
        finish_on_key="",
        num_digits=1,
    )
    return _answered(ask, _said("officer_not_taken", language), Hangup())


@bp.post("/answer")
@webhook_signed
def answer() -> Response:
    """The officer pressed 1: the recorded Dial to the citizen, their number looked up now."""
    call_id = _call_id()
    language = _language(call_id)
    if _turn().digits != "1":
        return _answered(_said("officer_not_taken", language), Hangup())
    with Session(_runtime().engine) as session:
        dialling = citizen_calls.to_dial(session, call_id)
    caller_id = our_number(_runtime().settings)
    if dialling is None or caller_id is None:
        return _answered(_said("officer_call_closed", language), Hangup())
    _call, number = dialling
    dial = DialNumber(
        number,
        caller_id,
        _path(f"/officer/dialled?call={call_id}"),
        citizen_calls.TALK_LIMIT_S,
        citizen_calls.RING_CITIZEN_S,
        recording_callback=_path(f"/officer/recorded?call={call_id}"),
    )
    return _answered(_said("officer_connecting", language), dial)


@bp.post("/dialled")
@webhook_signed
def dialled() -> Response:
    """The Dial's action: how the citizen's leg ended, on the call and the request's timeline."""
    call_id = _call_id()
    language = _language(call_id)
    outcome = DIAL_OUTCOMES.get(_turn().dial_status, "failed")
    seconds = (calllog.seconds(_turn().dial_duration) or 0) if outcome == "completed" else 0
    with session_scope(_runtime().engine) as session:
        citizen_calls.ended(session, call_id, outcome == "completed", seconds, outcome, _runtime().clock.now())
    said = "officer_call_ended" if outcome == "completed" else "officer_citizen_unanswered"
    return _answered(_said(said, language), Hangup())


@bp.post("/recorded")
@webhook_signed
def recorded() -> Response:
    """The platform's recording of the conversation, once it is ready: kept, linked to the call. A
    Twilio callback for a recording not (yet) completed keeps nothing."""
    status = request.form.get("RecordingStatus", "completed")
    made = _ivr().platform.recording(request.form)
    if status == "completed" and made.recording_id and made.url:
        seconds = calllog.seconds(made.duration) or 0
        platform = _runtime().settings.telephony.platform
        with session_scope(_runtime().engine) as session:
            citizen_calls.recorded(session, _call_id(), _turn().call_id, platform, made.recording_id, made.url, seconds)
    return Response(status=204)


@bp.errorhandler(Exception)
def failed(error: Exception) -> Response | HTTPException:
    """Never a 500 to the platform: the officer hears an apology and the call ends."""
    if isinstance(error, HTTPException):
        return error
    log.exception("officer call webhook failed", exc_info=error)
    if request.endpoint == "officer.recorded":
        return Response(status=204)
    return _answered(_said("technical_problem", "en"), Hangup())
