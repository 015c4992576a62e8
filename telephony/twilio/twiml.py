"""Twilio's webhooks: its forms read into the helpline's call types, and call instructions written
as TwiML by the rules Twilio documents (twilio.com/docs/voice/twiml). The document is the one the
SDK's `VoiceResponse` writes, character for character (tests/unit/test_twiml.py holds it to it),
written here as text: the SDK builds a tree of its verbs, then an ElementTree, and serialises it, 58
µs for a booking's read-back against 17 µs here (docs/reliability.md)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twilio.twiml.messaging_response import MessagingResponse

from telephony.call import (
    CallTurn,
    Conference,
    DeliveryReport,
    Dial,
    DialNumber,
    Enqueue,
    Gather,
    Hangup,
    InboundMessage,
    Instruction,
    Leave,
    Pause,
    Play,
    Record,
    Recording,
    Redirect,
    Say,
)

MIMETYPE = "text/xml"


class TwilioWebhooks:
    """The `CallPlatform` of Twilio."""

    mimetype = MIMETYPE
    queues = True
    coaching = True  # <Conference coach="CA…"> (twilio.com/docs/voice/twiml/conference#attributes-coach)

    def call_turn(self, form: Mapping[str, str]) -> CallTurn:
        return call_turn(form)

    def inbound_message(self, form: Mapping[str, str]) -> InboundMessage:
        return InboundMessage(form.get("MessageSid", ""), form.get("From", ""), form.get("Body", ""))

    def delivery_report(self, form: Mapping[str, str]) -> DeliveryReport:
        return DeliveryReport(form.get("MessageSid", ""), form.get("MessageStatus", ""), form.get("ErrorCode", ""))

    def recording(self, form: Mapping[str, str]) -> Recording:
        """<Record>'s action (twilio.com/docs/voice/twiml/record): RecordingSid, RecordingUrl,
        RecordingDuration (seconds), Digits (the key that ended it, or "hangup")."""
        get = form.get
        made = get("RecordingSid", ""), get("RecordingUrl", ""), get("RecordingDuration", "")
        return Recording(*made, digits=get("Digits", ""))

    def document(self, instructions: Sequence[Instruction]) -> str:
        return document(instructions)

    def message_reply(self) -> str:
        return EMPTY_MESSAGE_REPLY


def call_turn(form: Mapping[str, str]) -> CallTurn:
    """A voice webhook's form (Twilio's names) as a CallTurn."""
    direction = form.get("Direction", "inbound")
    get = form.get
    return CallTurn(
        call_id=get("CallSid", ""),
        caller=get("From", ""),
        callee=get("To", ""),
        outbound=direction.startswith("outbound"),
        inbound=direction == "inbound",
        digits=get("Digits", ""),
        status=get("CallStatus", ""),
        duration=get("CallDuration", ""),
        queue_position=get("QueuePosition", ""),
        queue_result=get("QueueResult", ""),
        queue_time=get("QueueTime", ""),
        dial_status=get("DialCallStatus", ""),
        dial_duration=get("DialCallDuration", ""),
        failed_url=get("ErrorUrl", ""),
    )


def document(instructions: Sequence[Instruction]) -> str:
    """The TwiML document of `instructions`, in order."""
    verbs = "".join(_WRITERS[type(instruction)](instruction) for instruction in instructions)
    return DECLARATION + _element("Response", {}, "", verbs)


# The document the SDK writes (`TwiML.to_xml`: an ElementTree serialised): the declaration, each
# element's attributes named in lower camel case and sorted, a boolean written `true` or `false`, text
# and attribute values escaped as ElementTree escapes them, an empty element closed ` />`, and a
# character UTF-8 cannot hold (a lone surrogate) written as a character reference.
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_TEXT = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTRIBUTE = (*_TEXT, ('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;"))
_SURROGATE = re.compile("[\ud800-\udfff]")


def _element(name: str, attributes: Mapping[str, object], text: str, children: str = "") -> str:
    written = "".join(f' {key}="{_escaped(_value(attributes[key]), _ATTRIBUTE)}"' for key in sorted(attributes))
    if not (text or children):
        return f"<{name}{written} />"
    return f"<{name}{written}>{_escaped(text, _TEXT)}{children}</{name}>"


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _escaped(text: str, replaced: tuple[tuple[str, str], ...]) -> str:
    """`text` escaped as ElementTree escapes it: a character replaced only where there is one (a scan
    in C for each), as a turn token of 600 characters mostly has none."""
    for character, reference in replaced:
        if character in text:
            text = text.replace(character, reference)
    return text if text.isascii() else _SURROGATE.sub(lambda found: f"&#{ord(found.group())};", text)


# Each instruction as TwiML, by Twilio's rules (twilio.com/docs/voice/twiml), as the SDK's
# `VoiceResponse` verbs write it.
def _say(say: Say) -> str:
    return _element("Say", {"language": say.language, "voice": say.voice}, say.text)


def _play(play: Play) -> str:
    return _element("Play", {}, play.url)


def _gather(gather: Gather) -> str:
    options: dict[str, object] = {
        "action": gather.action,
        "method": "POST",
        "timeout": gather.timeout,
        "finishOnKey": gather.finish_on_key,
    }
    if gather.on_empty:
        options["actionOnEmptyResult"] = True
    if gather.num_digits:
        options["numDigits"] = gather.num_digits
    return _element("Gather", options, "", "".join(_WRITERS[type(prompt)](prompt) for prompt in gather.prompts))


def _record(record: Record) -> str:
    options = {
        "action": record.action,
        "method": "POST",
        "maxLength": record.max_length,
        "timeout": record.timeout,
        "finishOnKey": record.finish_on_key,
        "playBeep": record.beep,
    }
    return _element("Record", options, "")


def _redirect(redirect: Redirect) -> str:
    return _element("Redirect", {"method": "POST"}, redirect.url)


def _enqueue(enqueue: Enqueue) -> str:
    options = {"action": enqueue.action, "method": "POST", "waitUrl": enqueue.wait_url, "waitUrlMethod": "POST"}
    return _element("Enqueue", options, enqueue.queue)


def _leave(_leave: Leave) -> str:
    return _element("Leave", {}, "")


def _pause(pause: Pause) -> str:
    return _element("Pause", {"length": pause.seconds}, "")


def _hangup(_hangup: Hangup) -> str:
    return _element("Hangup", {}, "")


def _dial(dial: Dial) -> str:
    queue = _element("Queue", {"url": dial.bridge_url, "method": "POST"}, dial.queue)
    return _element("Dial", {"action": dial.action, "method": "POST", "timeout": dial.timeout}, "", queue)


def _dial_number(dial: DialNumber) -> str:
    """<Dial callerId timeLimit timeout action><Number> (twilio.com/docs/voice/twiml/dial): the
    action hears DialCallStatus and DialCallDuration, and its TwiML goes on with the call. Recorded:
    `record="record-from-answer"` and `recordingStatusCallback`, to which Twilio posts RecordingSid,
    RecordingUrl, RecordingStatus and RecordingDuration once the recording is completed
    (twilio.com/docs/voice/twiml/dial#record, #recordingstatuscallback)."""
    options: dict[str, object] = {
        "action": dial.action,
        "method": "POST",
        "callerId": dial.caller_id,
        "timeLimit": dial.time_limit,
        "timeout": dial.timeout,
    }
    if dial.recording_callback:
        options |= {
            "record": "record-from-answer",
            "recordingStatusCallback": dial.recording_callback,
            "recordingStatusCallbackEvent": "completed",
            "recordingStatusCallbackMethod": "POST",
        }
    return _element("Dial", options, "", _element("Number", {}, dial.number))


def _conference(conference: Conference) -> str:
    """<Dial><Conference> (twilio.com/docs/voice/twiml/conference): `muted` heard by nobody, `coach`
    the CallSid of the only participant who hears this one; a supervisor's leg neither ends the room
    nor beeps on entering it. Recorded: `record="record-from-start"` and `recordingStatusCallback`
    (#record, #recordingstatuscallback), posted ConferenceSid, RecordingSid, RecordingUrl,
    RecordingStatus and RecordingDuration when the recording is completed; a recording paused and
    resumed by REST (twilio.com/docs/voice/api/conference-recording-resource) is still the one recording."""
    options: dict[str, object] = {"endConferenceOnExit": conference.ends_room}
    if conference.muted:
        options["muted"] = True
    if conference.coach:
        options["coach"] = conference.coach
    if not conference.beep:
        options["beep"] = False
    if conference.record:
        options["record"] = "record-from-start"
    if conference.record and conference.recording_callback:
        options |= {
            "recordingStatusCallback": conference.recording_callback,
            "recordingStatusCallbackEvent": "completed",
            "recordingStatusCallbackMethod": "POST",
        }
    return _element("Dial", {}, "", _element("Conference", options, conference.room))


_WRITERS: dict[type, Callable[[Any], str]] = {
    Conference: _conference,
    Say: _say,
    Play: _play,
    Gather: _gather,
    Record: _record,
    Redirect: _redirect,
    Enqueue: _enqueue,
    Leave: _leave,
    Pause: _pause,
    Hangup: _hangup,
    Dial: _dial,
    DialNumber: _dial_number,
}
EMPTY_MESSAGE_REPLY = str(MessagingResponse())
