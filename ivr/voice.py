"""Voice webhooks. Until the call flow lands this answers every call with a greeting."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from flows import prompts
from ivr.signature import twilio_signed

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/twilio/voice")


def twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="text/xml")


def _say_in_every_language(response: VoiceResponse, prompt: str) -> None:
    for language in current_app.extensions["sewamitra"].settings.languages:
        response.say(prompts.text(prompt, language.code), language=language.tts_language, voice=language.voice)


@bp.post("")
@twilio_signed
def incoming() -> Response:
    response = VoiceResponse()
    _say_in_every_language(response, "welcome_setting_up")
    response.hangup()
    return twiml(response)


@bp.post("/fallback")
@twilio_signed
def fallback() -> Response:
    """Twilio calls this when our voice URL failed; the caller hears an apology, not an error."""
    response = VoiceResponse()
    _say_in_every_language(response, "technical_problem")
    response.hangup()
    return twiml(response)


@bp.errorhandler(Exception)
def internal_error(error: Exception) -> Response | HTTPException:
    """Whatever broke, Twilio gets valid TwiML: never a 500, never Twilio's 'application error'."""
    if isinstance(error, HTTPException):
        return error
    log.exception("voice webhook failed", exc_info=error)
    response = VoiceResponse()
    _say_in_every_language(response, "technical_problem")
    response.hangup()
    return twiml(response)
