"""A call as the helpline sees it, whatever the platform: what a webhook says happened (`CallTurn`),
and what the call does next (a short list of `Instruction`s the platform renders in its own language).

The web adapter reads only these; each platform parses its own webhook forms into them and renders
them into its own documents (TwiML for Twilio), so a second platform joins without touching the
flows or the domain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# -- what happened ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallTurn:
    """One voice webhook, unchecked: every field is the platform's raw text, "" when it sent none."""

    call_id: str
    caller: str  # who rang: the citizen ringing us, or our number when we ring out
    callee: str
    outbound: bool  # we placed the call (an offer to a worker, a feedback call)
    inbound: bool  # a caller rang us: neither our call out nor a leg the platform made (an agent's dial)
    digits: str = ""  # what was keyed at a wait
    status: str = ""  # the call's status: ringing, in-progress, completed, busy, no-answer, …
    duration: str = ""  # seconds, once the call is over
    hangup_cause: str = ""  # why it ended, in the platform's words (Plivo's HangupCause: NORMAL_CLEARING, …)
    queue_position: str = ""  # the caller's place in the agents' queue
    queue_result: str = ""  # how the caller left that queue: bridged, hangup, leave, …
    queue_time: str = ""  # seconds the caller waited in it
    dial_status: str = ""  # how a dial ended (an agent's to the queue, a bridged call): completed, busy, no-answer, …
    dial_duration: str = ""  # seconds the dialled party was connected, when they answered
    failed_url: str = ""  # the URL of ours that failed, when the platform falls back

    @property
    def party(self) -> str:
        """The phone at the other end: the caller when they ring us, the callee when we ring them."""
        return self.callee if self.outbound else self.caller


@dataclass(frozen=True)
class InboundMessage:
    """An SMS to the helpline, unchecked."""

    message_id: str
    sender: str
    body: str


@dataclass(frozen=True)
class DeliveryReport:
    """The platform's news of an SMS we sent, unchecked."""

    message_id: str
    status: str  # queued, sent, delivered, undelivered, failed, …
    error_code: str = ""


# -- what the call does next -----------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """Text read out by the platform's text-to-speech."""

    text: str
    language: str  # the TTS language, e.g. hi-IN
    voice: str  # the TTS voice, e.g. Polly.Aditi


@dataclass(frozen=True)
class Play:
    url: str


@dataclass(frozen=True)
class Gather:
    """Wait for keys while the prompts play; what was keyed goes to `action`."""

    prompts: tuple[Say | Play, ...]
    action: str
    timeout: int
    finish_on_key: str
    num_digits: int | None = None
    on_empty: bool = False  # go to `action` after silence too, rather than to the next instruction


@dataclass(frozen=True)
class Record:
    """Record the caller after a beep, up to `max_length` seconds, ended by `finish_on_key` or
    `timeout` seconds of silence; the recording's id, URL and length go to `action`. An empty
    recording may go on to the next instruction instead (Twilio's rule), so a Redirect follows it."""

    action: str
    max_length: int
    timeout: int
    finish_on_key: str
    beep: bool = True


@dataclass(frozen=True)
class Recording:
    """What a Record's action says the platform kept: its id, URL and seconds, "" when it sent none."""

    recording_id: str
    url: str
    duration: str
    digits: str = ""


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Enqueue:
    """Put the caller in the queue for an agent; `wait_url` is played while they wait, `action`
    hears how they left."""

    queue: str
    wait_url: str
    action: str


@dataclass(frozen=True)
class Leave:
    """Take the caller out of the queue they are waiting in (on to the Enqueue's action)."""


@dataclass(frozen=True)
class Pause:
    seconds: int


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Dial:
    """Connect this call (an agent) to the caller waiting longest in `queue`; `bridge_url` is played
    to that caller first, `action` hears how the dial ended."""

    queue: str
    bridge_url: str
    action: str
    timeout: int


@dataclass(frozen=True)
class DialNumber:
    """Put the caller through to `number`, shown `caller_id` (the helpline's number); ring `timeout`
    seconds, talk at most `time_limit` seconds; `action` hears how it ended (and how long it lasted),
    and what it answers is the rest of the call."""

    number: str
    caller_id: str
    action: str
    time_limit: int
    timeout: int = 30
    recording_callback: str | None = None  # record the conversation from the answer; the recording goes here


@dataclass(frozen=True)
class Conference:
    """Join the call to the conference room `room`, ended when either call leaves it: how an agent is
    bridged with a caller on every platform (both join the caller's room). The
    call goes on with the next instruction when the room ends. `callback` hears its members enter
    and leave where the platform names members by an id of its own (Plivo's callbackUrl, with
    ConferenceMemberID); Twilio names a participant by its CallSid, and needs none."""

    room: str
    muted: bool = False  # heard by nobody (a supervisor listening)
    coach: str = ""  # the call id of the one member who alone hears this call (a supervisor whispering)
    ends_room: bool = True  # the room ends when this call leaves it (not a supervisor's leg)
    beep: bool = True  # the room hears this call come and go (not a supervisor's leg)
    callback: str | None = None


Instruction = (
    Say | Play | Gather | Record | Redirect | Enqueue | Leave | Pause | Hangup | Dial | DialNumber | Conference
)


class CallPlatform(Protocol):
    """A platform's webhooks: its forms read into the types above, and instructions written as its
    documents."""

    mimetype: str  # of its call documents and message replies
    queues: bool  # it has queue verbs (Enqueue, Leave, a Dial to a queue); else the helpline keeps the queue
    coaching: bool  # a room's member may be heard by one other member only (a supervisor's whisper)

    def call_turn(self, form: Mapping[str, str]) -> CallTurn: ...

    def inbound_message(self, form: Mapping[str, str]) -> InboundMessage: ...

    def delivery_report(self, form: Mapping[str, str]) -> DeliveryReport: ...

    def recording(self, form: Mapping[str, str]) -> Recording:
        """A Record's action: the recording the platform kept, in its own parameter names."""
        ...

    def document(self, instructions: Sequence[Instruction]) -> str:
        """What the call does next, as the platform reads it."""
        ...

    def message_reply(self) -> str:
        """The answer to an inbound SMS that sends nothing back."""
        ...
