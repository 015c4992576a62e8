"""Twilio's webhooks: its forms read into the helpline's call types, and call instructions written
as TwiML (with Twilio's SDK, so the documents are the ones Twilio documents)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

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
    response = VoiceResponse()
    for instruction in instructions:
        _WRITERS[type(instruction)](response, instruction)
    return str(response)


# Each instruction as a verb of `parent` (the Response, or a Gather for its prompts).
def _say(parent: Any, say: Say) -> None:
    parent.say(say.text, language=say.language, voice=say.voice)


def _play(parent: Any, play: Play) -> None:
    parent.play(play.url)


def _gather(parent: Any, gather: Gather) -> None:
    options: dict[str, object] = {
        "action": gather.action,
        "method": "POST",
        "timeout": gather.timeout,
        "finish_on_key": gather.finish_on_key,
    }
    if gather.on_empty:
        options["action_on_empty_result"] = True
    if gather.num_digits:
        options["num_digits"] = gather.num_digits
    verb = parent.gather(**options)
    for prompt in gather.prompts:
        _WRITERS[type(prompt)](verb, prompt)


def _record(parent: Any, record: Record) -> None:
    parent.record(
        action=record.action,
        method="POST",
        max_length=record.max_length,
        timeout=record.timeout,
        finish_on_key=record.finish_on_key,
        play_beep=record.beep,
    )


def _redirect(parent: Any, redirect: Redirect) -> None:
    parent.redirect(redirect.url, method="POST")


def _enqueue(parent: Any, enqueue: Enqueue) -> None:
    parent.enqueue(
        enqueue.queue, action=enqueue.action, method="POST", wait_url=enqueue.wait_url, wait_url_method="POST"
    )


def _leave(parent: Any, _leave: Leave) -> None:
    parent.leave()


def _pause(parent: Any, pause: Pause) -> None:
    parent.pause(length=pause.seconds)


def _hangup(parent: Any, _hangup: Hangup) -> None:
    parent.hangup()


def _dial(parent: Any, dial: Dial) -> None:
    verb = parent.dial(action=dial.action, method="POST", timeout=dial.timeout)
    verb.queue(dial.queue, url=dial.bridge_url, method="POST")


def _dial_number(parent: Any, dial: DialNumber) -> None:
    """<Dial callerId timeLimit timeout action><Number> (twilio.com/docs/voice/twiml/dial): the
    action hears DialCallStatus and DialCallDuration, and its TwiML goes on with the call. Recorded:
    `record="record-from-answer"` and `recordingStatusCallback`, to which Twilio posts RecordingSid,
    RecordingUrl, RecordingStatus and RecordingDuration once the recording is completed
    (twilio.com/docs/voice/twiml/dial#record, #recordingstatuscallback)."""
    recorded: dict[str, str] = {}
    if dial.recording_callback:
        recorded = {
            "record": "record-from-answer",
            "recording_status_callback": dial.recording_callback,
            "recording_status_callback_event": "completed",
            "recording_status_callback_method": "POST",
        }
    verb = parent.dial(
        action=dial.action,
        method="POST",
        caller_id=dial.caller_id,
        time_limit=dial.time_limit,
        timeout=dial.timeout,
        **recorded,
    )
    verb.number(dial.number)


def _conference(parent: Any, conference: Conference) -> None:
    """<Dial><Conference> (twilio.com/docs/voice/twiml/conference): `muted` heard by nobody, `coach`
    the CallSid of the only participant who hears this one; a supervisor's leg neither ends the room
    nor beeps on entering it. Recorded: `record="record-from-start"` and `recordingStatusCallback`
    (#record, #recordingstatuscallback), posted ConferenceSid, RecordingSid, RecordingUrl,
    RecordingStatus and RecordingDuration when the recording is completed; a recording paused and
    resumed by REST (twilio.com/docs/voice/api/conference-recording-resource) is still the one recording."""
    extra: dict[str, Any] = {"muted": True} if conference.muted else {}
    if conference.coach:
        extra["coach"] = conference.coach
    if not conference.beep:
        extra["beep"] = False
    if conference.record:
        extra["record"] = "record-from-start"
    if conference.record and conference.recording_callback:
        extra |= {
            "recording_status_callback": conference.recording_callback,
            "recording_status_callback_event": "completed",
            "recording_status_callback_method": "POST",
        }
    parent.dial().conference(conference.room, end_conference_on_exit=conference.ends_room, **extra)


_WRITERS: dict[type, Callable[[Any, Any], None]] = {
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
