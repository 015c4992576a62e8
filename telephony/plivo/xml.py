"""Plivo's webhooks: its forms read into the helpline's call types, and call instructions written as
Plivo XML with the SDK's own builders (`plivo.plivoxml`), by the rules Plivo documents
(plivo.com/docs/voice/xml/getdigits, /xml/request, /xml/speak, /xml/dial).

Plivo XML has no queue verbs: `Enqueue`, `Leave` and a `Dial` to a queue never reach this renderer,
the web adapter keeps the queue itself (`CallPlatform.queues` is False), asks for documents made
of the other instructions, and bridges an agent with a caller in a `Conference`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plivo import plivoxml

from telephony.call import (
    CallTurn,
    Conference,
    DeliveryReport,
    DialNumber,
    Gather,
    Hangup,
    InboundMessage,
    Instruction,
    Pause,
    Play,
    Record,
    Recording,
    Redirect,
    Say,
)

MIMETYPE = "application/xml"
# Plivo's CallStatus on a hangup says "timeout" where the helpline (and Twilio) say "no-answer".
STATUS_WORDS = {"timeout": "no-answer"}
# Plivo's message states (plivo.com/docs/messaging/api/message): "rejected" is Plivo's refusal before
# sending, which the helpline keeps as failed; "read" is for WhatsApp, "received" for inbound.
MESSAGE_STATES = {"rejected": "failed"}
GETDIGITS_RETRIES = 1  # the flow asks again itself: one round of prompts per GetDigits


class PlivoWebhooks:
    """The `CallPlatform` of Plivo. Plivo fetches only fully qualified URLs, so the instructions'
    paths are made absolute on `public_url`."""

    mimetype = MIMETYPE
    queues = False  # Plivo XML has no <Enqueue>: the helpline keeps its agent queue itself
    # Plivo's Conference has no coach: a member is heard by all or (muted) by nobody. Only its
    # Multiparty Call API has a supervisor's coach mode (plivo.com/docs/voice/api/multiparty-call/
    # participants/update-participant-state), and the helpline's rooms are Conferences.
    coaching = False

    def __init__(self, public_url: str) -> None:
        self.public_url = public_url.rstrip("/")

    def call_turn(self, form: Mapping[str, str]) -> CallTurn:
        return call_turn(form)

    def inbound_message(self, form: Mapping[str, str]) -> InboundMessage:
        """An inbound SMS: MessageUUID, From, To, Text (Plivo's message URL parameters)."""
        return InboundMessage(form.get("MessageUUID", ""), _number(form.get("From", "")), form.get("Text", ""))

    def delivery_report(self, form: Mapping[str, str]) -> DeliveryReport:
        """A message status callback: MessageUUID, Status, ErrorCode."""
        status = form.get("Status", "")
        return DeliveryReport(
            form.get("MessageUUID", ""), MESSAGE_STATES.get(status, status), form.get("ErrorCode", "")
        )

    def recording(self, form: Mapping[str, str]) -> Recording:
        """<Record>'s action (plivo.com/docs/voice/xml/record): RecordingID, RecordUrl,
        RecordingDuration (seconds), Digits."""
        get = form.get
        made = get("RecordingID", ""), get("RecordUrl", ""), get("RecordingDuration", "")
        return Recording(*made, digits=get("Digits", ""))

    def document(self, instructions: Sequence[Instruction]) -> str:
        """The Plivo XML document of `instructions`, in order."""
        response = plivoxml.ResponseElement()
        for instruction in instructions:
            if isinstance(instruction, DialNumber) and instruction.recording_callback:
                response.add(_record_dial(self, instruction))
            response.add(self._element(instruction))
        return str(response.to_string(pretty=False))

    def message_reply(self) -> str:
        """An empty Response: Plivo sends nothing back for it."""
        return str(plivoxml.ResponseElement().to_string(pretty=False))

    def url(self, path: str) -> str:
        """A URL of ours as Plivo must be given it: fully qualified."""
        return path if "://" in path else f"{self.public_url}{path}"

    def _element(self, instruction: Instruction) -> Any:
        writer = _WRITERS.get(type(instruction))
        if writer is None:
            raise ValueError(f"{type(instruction).__name__} has no Plivo XML: the helpline keeps its queue itself")
        return writer(self, instruction)


def call_turn(form: Mapping[str, str]) -> CallTurn:
    """A voice webhook's form (Plivo's names: plivo.com/docs/voice/xml/request) as a CallTurn."""
    get = form.get
    direction = get("Direction", "inbound")
    status = get("CallStatus", "")
    return CallTurn(
        call_id=get("CallUUID", ""),
        caller=_number(get("From", "")),
        callee=_number(get("To", "")),
        outbound=direction == "outbound",
        inbound=direction == "inbound",
        digits=get("Digits", ""),
        status=STATUS_WORDS.get(status, status),
        duration=get("Duration", ""),
        hangup_cause=get("HangupCause", ""),
        dial_status=STATUS_WORDS.get(get("DialStatus", ""), get("DialStatus", "")),
        dial_duration=get("DialBLegDuration", ""),
    )


def _number(raw: str) -> str:
    """Plivo sends numbers as country code and digits without '+': written as E.164 here."""
    return f"+{raw}" if raw.isascii() and raw.isdigit() and len(raw) > 6 else raw


# Each instruction as a Plivo XML element (the Response's child, or a GetDigits' for its prompts).
def _speak(platform: PlivoWebhooks, say: Say) -> Any:
    """Speak in the language's voice: Polly voices (Polly.Aditi speaks hi-IN and en-IN) or WOMAN/MAN."""
    return plivoxml.SpeakElement(say.text, voice=say.voice, language=say.language)


def _play(platform: PlivoWebhooks, play: Play) -> Any:
    return plivoxml.PlayElement(platform.url(play.url))


def _get_digits(platform: PlivoWebhooks, gather: Gather) -> Any:
    """GetDigits: Plivo posts to `action` only when keys were pressed (then `redirect` follows it); after
    silence it goes on to the next element, which the helpline makes a Redirect to the same action.
    digitTimeout (Plivo's default 2 s between keys) is the flow's timeout, as Twilio's Gather allows."""
    element = plivoxml.GetDigitsElement(
        action=platform.url(gather.action),
        method="POST",
        timeout=gather.timeout,
        digit_timeout=gather.timeout,
        finish_on_key=gather.finish_on_key or "none",
        num_digits=gather.num_digits,
        retries=GETDIGITS_RETRIES,
        redirect=True,
    )
    for prompt in gather.prompts:
        element.add(_WRITERS[type(prompt)](platform, prompt))
    return element


def _record(platform: PlivoWebhooks, record: Record) -> Any:
    """Record (plivo.com/docs/voice/xml/record): with `redirect` (the default) Plivo goes to `action`
    with the recording; the Redirect the helpline puts after it is for a recording Plivo did not make."""
    return plivoxml.RecordElement(
        action=platform.url(record.action),
        method="POST",
        max_length=record.max_length,
        timeout=record.timeout,
        finish_on_key=record.finish_on_key,
        play_beep=record.beep,
        redirect=True,
    )


def _redirect(platform: PlivoWebhooks, redirect: Redirect) -> Any:
    return plivoxml.RedirectElement(platform.url(redirect.url), method="POST")


def _wait(platform: PlivoWebhooks, pause: Pause) -> Any:
    return plivoxml.WaitElement(length=pause.seconds)


def _hangup(platform: PlivoWebhooks, _hangup: Hangup) -> Any:
    return plivoxml.HangupElement()


def _dial(platform: PlivoWebhooks, dial: DialNumber) -> Any:
    """Dial with a Number (plivo.com/docs/voice/xml/dial): numbers as digits without '+', as Plivo
    writes them; `action` gets DialStatus (timeout is the helpline's no-answer) and DialBLegDuration,
    and with redirect (Plivo's default) its XML goes on with the call."""
    element = plivoxml.DialElement(
        action=platform.url(dial.action),
        method="POST",
        caller_id=dial.caller_id.removeprefix("+"),
        time_limit=dial.time_limit,
        timeout=dial.timeout,
        redirect=True,
    )
    element.add(plivoxml.NumberElement(dial.number.removeprefix("+")))
    return element


def _record_dial(platform: PlivoWebhooks, dial: DialNumber) -> Any:
    """The Record before a recorded Dial (plivo.com/docs/voice/xml/record): `startOnDialAnswer`
    records the conversation once the dialled party answers, no beep; `redirect` false goes straight
    on to the Dial; `callbackUrl` is posted RecordUrl, RecordingID and RecordingDuration when the
    recording is ready."""
    assert dial.recording_callback is not None
    return plivoxml.RecordElement(
        start_on_dial_answer=True,
        redirect=False,
        max_length=dial.time_limit,
        callback_url=platform.url(dial.recording_callback),
        callback_method="POST",
    )


def _conference(platform: PlivoWebhooks, conference: Conference) -> Any:
    """Conference (plivo.com/docs/voice/xml/conference): the room starts when a member enters, and
    ends when either member leaves; then Plivo goes on with the next element. `muted`: the member
    hears the room and nobody hears them (a supervisor listening); a supervisor's leg does not end it.
    No coach: Plivo's rooms cannot whisper (the console never asks). `callback`: Plivo posts each
    member entering and leaving, with its ConferenceMemberID."""
    if conference.coach:
        raise ValueError("Plivo's Conference cannot coach: only one member hearing another is not Plivo XML")
    callback = (
        {"callback_url": platform.url(conference.callback), "callback_method": "POST"} if conference.callback else {}
    )
    return plivoxml.ConferenceElement(
        conference.room,
        muted=conference.muted or None,
        start_conference_on_enter=True,
        end_conference_on_exit=conference.ends_room,
        **callback,
    )


_WRITERS: dict[type, Callable[[PlivoWebhooks, Any], Any]] = {
    Conference: _conference,
    DialNumber: _dial,
    Say: _speak,
    Play: _play,
    Gather: _get_digits,
    Record: _record,
    Redirect: _redirect,
    Pause: _wait,
    Hangup: _hangup,
}
