"""Plivo's webhooks: its forms read into the helpline's call types, and call instructions written as
Plivo XML by the rules Plivo documents (plivo.com/docs/voice/xml/getdigits, /xml/request, /xml/speak,
/xml/dial). The document is the one the SDK's builders (`plivo.plivoxml`) write, character for
character (tests/unit/test_plivo_xml.py holds it to them), written here as text: the SDK, lxml and
the REST client its package brings in were some 13 MB of a web worker answering Plivo's webhooks
(its peak 102-103 MB in the stress, 89-90 MB without them: docs/reliability.md).

Plivo XML has no queue verbs: `Enqueue`, `Leave` and a `Dial` to a queue never reach this renderer,
the web adapter keeps the queue itself (`CallPlatform.queues` is False), asks for documents made
of the other instructions, and bridges an agent with a caller in a `Conference`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
EMPTY = "<Response/>"
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
        RecordingDuration (seconds), Digits. A conference's recording started by the API posts the same
        in lower case: recording_id, record_url, recording_duration
        (plivo.com/docs/voice/api/conference/record-conference)."""
        get = form.get
        made = (
            get("RecordingID") or get("recording_id", ""),
            get("RecordUrl") or get("record_url", ""),
            get("RecordingDuration") or get("recording_duration", ""),
        )
        return Recording(*made, digits=get("Digits", ""))

    def document(self, instructions: Sequence[Instruction]) -> str:
        """The Plivo XML document of `instructions`, in order."""
        elements = []
        for instruction in instructions:
            if isinstance(instruction, DialNumber) and instruction.recording_callback:
                elements.append(_record_dial(self, instruction))
            elements.append(self._element(instruction))
        return f"<Response>{''.join(elements)}</Response>" if elements else EMPTY

    def message_reply(self) -> str:
        """An empty Response: Plivo sends nothing back for it."""
        return EMPTY

    def url(self, path: str) -> str:
        """A URL of ours as Plivo must be given it: fully qualified."""
        return path if "://" in path else f"{self.public_url}{path}"

    def _element(self, instruction: Instruction) -> str:
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


Attributes = Mapping[str, str | int | bool | None]  # an element's, in order; None is left out


# Each instruction as a Plivo XML element (the Response's child, or a GetDigits' for its prompts), its
# attributes in the order the SDK's `to_dict` gives them.
def _speak(platform: PlivoWebhooks, say: Say) -> str:
    """Speak in the language's voice: Polly voices (Polly.Aditi speaks hi-IN and en-IN) or WOMAN/MAN."""
    return _element("Speak", {"voice": say.voice, "language": say.language}, say.text)


def _play(platform: PlivoWebhooks, play: Play) -> str:
    return _element("Play", {}, platform.url(play.url))


def _get_digits(platform: PlivoWebhooks, gather: Gather) -> str:
    """GetDigits: Plivo posts to `action` only when keys were pressed (then `redirect` follows it); after
    silence it goes on to the next element, which the helpline makes a Redirect to the same action.
    digitTimeout (Plivo's default 2 s between keys) is the flow's timeout, as Twilio's Gather allows."""
    attributes: Attributes = {
        "action": platform.url(gather.action),
        "method": "POST",
        "timeout": gather.timeout,
        "digitTimeout": gather.timeout,
        "finishOnKey": gather.finish_on_key or "none",
        "numDigits": gather.num_digits,
        "retries": GETDIGITS_RETRIES,
        "redirect": True,
    }
    prompts = "".join(_WRITERS[type(prompt)](platform, prompt) for prompt in gather.prompts)
    return _element("GetDigits", attributes, inner=prompts)


def _record(platform: PlivoWebhooks, record: Record) -> str:
    """Record (plivo.com/docs/voice/xml/record): with `redirect` (the default) Plivo goes to `action`
    with the recording; the Redirect the helpline puts after it is for a recording Plivo did not make."""
    attributes: Attributes = {
        "action": platform.url(record.action),
        "method": "POST",
        "redirect": True,
        "timeout": record.timeout,
        "maxLength": record.max_length,
        "playBeep": record.beep,
        "finishOnKey": record.finish_on_key,
    }
    return _element("Record", attributes)


def _redirect(platform: PlivoWebhooks, redirect: Redirect) -> str:
    return _element("Redirect", {"method": "POST"}, platform.url(redirect.url))


def _wait(platform: PlivoWebhooks, pause: Pause) -> str:
    return _element("Wait", {"length": pause.seconds})


def _hangup(platform: PlivoWebhooks, _hangup: Hangup) -> str:
    return "<Hangup/>"


def _dial(platform: PlivoWebhooks, dial: DialNumber) -> str:
    """Dial with a Number (plivo.com/docs/voice/xml/dial): numbers as digits without '+', as Plivo
    writes them; `action` gets DialStatus (timeout is the helpline's no-answer) and DialBLegDuration,
    and with redirect (Plivo's default) its XML goes on with the call."""
    attributes: Attributes = {
        "action": platform.url(dial.action),
        "method": "POST",
        "timeLimit": dial.time_limit,
        "timeout": dial.timeout,
        "callerId": dial.caller_id.removeprefix("+"),
        "redirect": True,
    }
    return _element("Dial", attributes, inner=_element("Number", {}, dial.number.removeprefix("+")))


def _record_dial(platform: PlivoWebhooks, dial: DialNumber) -> str:
    """The Record before a recorded Dial (plivo.com/docs/voice/xml/record): `startOnDialAnswer`
    records the conversation once the dialled party answers, no beep; `redirect` false goes straight
    on to the Dial; `callbackUrl` is posted RecordUrl, RecordingID and RecordingDuration when the
    recording is ready."""
    assert dial.recording_callback is not None
    attributes: Attributes = {
        "redirect": False,
        "maxLength": dial.time_limit,
        "startOnDialAnswer": True,
        "callbackUrl": platform.url(dial.recording_callback),
        "callbackMethod": "POST",
    }
    return _element("Record", attributes)


def _conference(platform: PlivoWebhooks, conference: Conference) -> str:
    """Conference (plivo.com/docs/voice/xml/conference): the room starts when a member enters, and
    ends when either member leaves; then Plivo goes on with the next element. `muted`: the member
    hears the room and nobody hears them (a supervisor listening); a supervisor's leg does not end it.
    No coach: Plivo's rooms cannot whisper (the console never asks). `callbackUrl` hears the room's
    events: each member entering and leaving (ConferenceMemberID) and, recorded (`record`, mp3 as
    `recordFileFormat`), the one with ConferenceAction "record" carrying RecordUrl and RecordingID.
    Plivo has the one callbackUrl: a recorded room without `callback` posts to `recording_callback`."""
    if conference.coach:
        raise ValueError("Plivo's Conference cannot coach: only one member hearing another is not Plivo XML")
    callback = conference.callback or (conference.recording_callback if conference.record else None)
    attributes: Attributes = {
        "muted": conference.muted or None,
        "startConferenceOnEnter": True,
        "endConferenceOnExit": conference.ends_room,
        "record": conference.record or None,
        "recordFileFormat": "mp3" if conference.record else None,
        "callbackUrl": platform.url(callback) if callback else None,
        "callbackMethod": "POST" if callback else None,
    }
    return _element("Conference", attributes, conference.room)


# The XML as lxml writes the SDK's elements: text escapes &, <, > and CR; an attribute also the
# double quote, LF and tab. A character XML 1.0 cannot hold is refused, as lxml refuses it.
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_PLAIN = bytes(range(0x20)) + b'&<>"'  # in ASCII, what needs escaping or refusing


def _element(name: str, attributes: Attributes, text: str = "", inner: str = "") -> str:
    """`<name a="…">text</name>`, or `inner` (elements already written) for content; an attribute
    that is None is left out, a bool is written as Plivo reads it (true, false)."""
    written = "".join(f' {key}="{_attribute(value)}"' for key, value in attributes.items() if value is not None)
    content = _text(text) + inner
    return f"<{name}{written}>{content}</{name}>" if content else f"<{name}{written}/>"


def _text(text: str) -> str:
    return _escaped(text, _TEXT)


def _attribute(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _escaped(str(value), _ATTRIBUTE)


def _escaped(text: str, escapes: dict[int, str]) -> str:
    """`text` as XML, by `escapes`. Most of a document's text (its URLs with their turn tokens, voices,
    numbers) is ASCII with no control character and no markup, and is told so by two scans in C: a
    650-character URL in about 1 µs, where the regular expression and the translation take 13 µs."""
    if text.isascii():
        raw = text.encode()
        if len(raw.translate(None, _PLAIN)) == len(raw):
            return text
    if _NOT_XML.search(text):
        raise ValueError("text with a character XML 1.0 cannot hold, which lxml refuses too")
    return text.translate(escapes)


_WRITERS: dict[type, Callable[[PlivoWebhooks, Any], str]] = {
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
