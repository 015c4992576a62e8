"""A simulated caller: places a call against our webhooks and runs the TwiML answers as Twilio would.

Twilio cannot reach a test machine, so the helpline is tested by driving our webhooks the way Twilio
does (signed posts, its call parameters, its TwiML rules, its fallback on failure).

<Record> (twilio.com/docs/voice/twiml/record): the caller speaks after the beep; `finishOnKey`, the
`timeout` seconds of silence or `maxLength` end it, and Twilio requests `action` with RecordingSid,
RecordingUrl, RecordingDuration and Digits; **an empty recording requests no action: the call goes on
with the next verb**. A hang-up while recording still requests the action (Digits "hangup"). In a key
script a caller speaks with `say:N` (N seconds, then silence), `say:N#` (then presses #), and
`say:N!` makes Twilio lose the recording (a fault: the action comes without RecordingSid and URL).
At a <Record> only such an item, or `-` (silent at the beep), is taken: any other item is for a later
prompt, and the caller says nothing (an empty recording). Tests read whole
calls from it, `sewamitra simulate` lets a person call from a terminal, and the load benchmark
drives many calls at once.

<Dial><Number> runs by twilio.com/docs/voice/twiml/dial and /twiml/number: the number rings showing
`callerId`; the dialled phone (`CallSetup.callee`) answers, rings out after `timeout` (30 s by
default), is busy or cannot be reached; once connected the two talk until the dialled party hangs up
or `timeLimit` (14400 s by default) runs out. Then Twilio requests `action` with DialCallStatus
(completed, busy, no-answer, failed), DialCallSid and, when the dialled party answered,
DialCallDuration, and runs the TwiML it answers; without an action it goes on with the next verb.
With `record="record-from-answer"` (twilio.com/docs/voice/twiml/dial#record) an answered dial is
recorded from the answer, and once the recording is completed Twilio posts `recordingStatusCallback`
(#recordingstatuscallback) with RecordingSid, RecordingUrl, RecordingStatus "completed",
RecordingDuration, RecordingChannels and RecordingSource "DialVerb"; the simulator posts it when the
talk ends, before the action (Twilio sends it asynchronously: either may come first).

<Dial><Conference> (twilio.com/docs/voice/twiml/conference): the call joins the named room and talks
with whoever else is in it (one leg is simulated at a time: the other is whoever the helpline put
there) until the room ends (`endConferenceOnExit`) or the call is moved out of it; then the Dial's
action, or the next verb. A participant joined `muted` is heard by nobody, one with `coach="CA…"`
by that participant only (`InRoom`, for `devtools.rooms`); as the leg enters, `CallSetup.in_room`
runs what the test says happens meanwhile (other legs joining, REST changes). While in the room
each of the caller's key items left is a moment of talk: what happens on the line between them (an
agent's console) happens while they talk.

A live call moved by the REST API (twilio.com/docs/voice/api/call-resource#update-a-call-resource: a
new `Url`, whose TwiML the call runs at once): `CallSetup.moved` tells the simulator (the sandbox's
`moved`, or `SandboxMoves` asking a sandbox in another process, `sewamitra up`'s); the call leaves
what it is doing at its next step (the next verb of its document, a round of hold music, a room;
a caller waiting at the terminal's prompt is taken on at once, `TerminalKeys`) and requests the new
URL. A caller moved
out of an <Enqueue> leaves the queue with QueueResult "redirected": its action is requested and its
TwiML not run, the call going on with the new URL (twilio.com/docs/voice/twiml/enqueue#attributes-action).
A room recorded (the <Conference> noun's `record="record-from-start"` and `recordingStatusCallback`,
twilio.com/docs/voice/twiml/conference#record, #recordingstatuscallback): when the call's time in
the room is over (the room ends with it) the callback is posted ConferenceSid, RecordingSid,
RecordingUrl, RecordingStatus "completed", RecordingDuration, RecordingChannels and RecordingSource
"DialConference".
"""

from __future__ import annotations

import email.utils
import functools
import json
import math
import os
import re
import secrets
import select
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from enum import IntEnum
from typing import TYPE_CHECKING, Literal, NoReturn, Protocol, TextIO, TypeAlias, TypeVar, runtime_checkable
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

from telephony.twilio.signature import SIGNATURE_HEADER

if TYPE_CHECKING:
    from flask.testing import FlaskClient

API_VERSION = "2010-04-01"
TWIML_CONTENT_TYPES = frozenset({"text/xml", "application/xml", "text/html"})
MAX_TWIML_BYTES = 64 * 1024
MAX_REDIRECTS = 10
MAX_QUEUE_SIZE = 100
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."
DEFAULT_HOLD_MUSIC = "http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"

SILENCE, AGENT, HANGUP = "-", "agent", "hangup"
TERMINAL_POLL_S = 0.2  # how often a caller waiting at the terminal's prompt asks whether the call was moved
DTMF_KEYS = frozenset("0123456789*#")
SPEECH = re.compile(r"^say:(?P<seconds>\d{1,4})(?P<end>[#!]?)$")  # the caller speaks at a <Record>

# The simulated clock, in seconds: what CallDuration and QueueTime are made of.
SAY_CHARS_PER_SECOND = 12
PLAY_SECONDS = 5
KEY_SECONDS = 1
AGENT_TALK_SECONDS = 60
RECORDING_SECONDS = 10

AUDIO_VERBS = frozenset({"Say", "Play", "Pause"})
CALL_VERBS = AUDIO_VERBS | {"Gather", "Redirect", "Hangup", "Reject", "Enqueue", "Leave", "Dial", "Record"}
WAIT_VERBS = AUDIO_VERBS | {"Gather", "Redirect", "Leave", "Hangup"}
NOT_SIMULATED = frozenset({"Connect", "Start", "Stop", "Pay", "Refer", "Sms", "Echo"})

Ender = Literal["caller", "app", "agent", "twilio"]


class TwilioError(IntEnum):
    """The codes Twilio's debugger would log for the failures we simulate."""

    HTTP_RETRIEVAL_FAILURE = 11200
    HTTP_CONNECTION_FAILURE = 11205
    TOO_MANY_REDIRECTS = 11215
    RESPONSE_TOO_LARGE = 11750
    DOCUMENT_PARSE_FAILURE = 12100
    SCHEMA_VALIDATION_WARNING = 12200
    INVALID_CONTENT_TYPE = 12300


# --- what the caller experiences: the transcript ------------------------------------------------


class Told:
    """An event told in one line: its template (`says`), filled in with its own fields."""

    says: str = ""

    def __init_subclass__(cls, says: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.says = says

    def line(self) -> str:
        return self.says.format(self)


@dataclass(frozen=True)
class Heard:
    """Text-to-speech the caller heard."""

    text: str
    language: str = "en-US"
    voice: str = ""
    loop: int = 1

    def line(self) -> str:
        again = f" (x{self.loop})" if self.loop != 1 else ""
        return f"caller hears ({self.language}): {self.text}{again}"


@dataclass(frozen=True)
class Played(Told, says="caller hears audio: {0.url}"):
    """An audio file the caller heard."""

    url: str
    loop: int = 1


@dataclass(frozen=True)
class Paused(Told, says="(pause {0.seconds:g} s)"):
    seconds: float


@dataclass(frozen=True)
class Pressed:
    """Keys the caller pressed; `ignored` when no Gather was listening (hold music)."""

    digits: str
    ignored: bool = False

    def line(self) -> str:
        return f"caller presses {self.digits}" + (" (nobody is listening)" if self.ignored else "")


@dataclass(frozen=True)
class Silence(Told, says="caller presses nothing ({0.seconds:g} s)"):
    """A Gather that heard nothing before its timeout."""

    seconds: float = 0


@dataclass(frozen=True)
class Queued(Told, says="caller waits in queue {0.name!r}"):
    name: str


@dataclass(frozen=True)
class Bridged(Told, says="an agent answers"):
    pass


@dataclass(frozen=True)
class Dialed(Told, says="Twilio dials {0.kind} {0.target}"):
    target: str
    kind: str = "number"


@dataclass(frozen=True)
class InRoom(Told, says="the call {0.call_id} is in room {0.room} (muted: {0.muted}, coaching: {0.coach!r})"):
    """A leg joined a conference room, as its document asked: heard by nobody (`muted`), by the call
    `coach` only, or by everyone; `devtools.rooms` says who hears whom from these."""

    room: str
    call_id: str
    muted: bool = False
    coach: str = ""
    member: str = ""  # the platform's name for it in the room (Plivo's ConferenceMemberID; Twilio's CallSid)


@dataclass(frozen=True)
class Moved(Told, says="the call is moved by the REST API to {0.url}"):
    url: str


@dataclass(frozen=True)
class Rang(Told, says="{0.number} rings, with caller ID {0.caller_id}"):
    """A <Dial><Number>: the dialled phone rings, showing `caller_id`."""

    number: str
    caller_id: str


@dataclass(frozen=True)
class Talked:
    """How a dialled phone answered: `status` in Twilio's words; the talk, cut at the dial's time limit."""

    status: str
    seconds: float = 0
    time_limit: float = 0

    def line(self) -> str:
        if self.status != "completed":
            return f"the dialled phone does not connect: {self.status}"
        cut = " and the time limit ends the call" if self.seconds >= self.time_limit else ""
        return f"the dialled phone answers; they talk {self.seconds:g} s{cut}"


@dataclass(frozen=True)
class Callee:
    """The phone a <Dial><Number> rings: whether it answers ("completed"), rings out ("no-answer"), is
    "busy" or cannot be reached ("failed"), and how long its owner talks once connected."""

    answers: Literal["completed", "no-answer", "busy", "failed"] = "completed"
    talks: float = 120


@dataclass(frozen=True)
class Recorded(Told, says="caller is recorded ({0.seconds:g} s)"):
    seconds: float


@dataclass(frozen=True)
class Hangup:
    by: Ender

    def line(self) -> str:
        return {"caller": "caller hangs up", "app": "the helpline ends the call", "agent": "the agent hangs up"}.get(
            self.by, "Twilio ends the call"
        )


@dataclass(frozen=True)
class Request(Told, says="-> {0.method} {0.url} {0.status}"):
    """One webhook request as Twilio made it, and the HTTP status it got (0: no answer)."""

    url: str
    form: dict[str, str]
    status: int
    method: str = "POST"


@dataclass(frozen=True)
class Failure:
    """Something Twilio would log in its debugger: in a test, a bug to assert on."""

    code: int | None
    message: str
    url: str = ""

    def line(self) -> str:
        code = f"Twilio error {self.code}" if self.code else "simulator"
        return f"!! {code}: {self.message}" + (f" ({self.url})" if self.url else "")


Event: TypeAlias = (
    Heard
    | Played
    | Paused
    | Pressed
    | Silence
    | Queued
    | Bridged
    | Dialed
    | InRoom
    | Moved
    | Rang
    | Talked
    | Recorded
    | Hangup
    | Request
    | Failure
)


@dataclass
class Transcript:
    """Everything that happened on one call, in order, with the questions tests ask of it."""

    call_sid: str
    events: list[Event] = field(default_factory=list)
    status: str = "in-progress"
    duration: int = 0
    unused_keys: list[str] = field(default_factory=list)

    @property
    def heard(self) -> list[str]:
        return [event.text for event in self.events if isinstance(event, Heard)]

    def said(self, fragment: str) -> bool:
        return any(fragment in text for text in self.heard)

    @property
    def requests(self) -> list[Request]:
        return [event for event in self.events if isinstance(event, Request)]

    @property
    def errors(self) -> list[Failure]:
        return [event for event in self.events if isinstance(event, Failure)]

    @property
    def ended_by(self) -> Ender | None:
        hangups = [event.by for event in self.events if isinstance(event, Hangup)]
        return hangups[-1] if hangups else None

    def render(self, *, requests: bool = False) -> str:
        """The call as a person would tell it: for failure messages and the terminal."""
        lines = [event.line() for event in self.events if requests or not isinstance(event, Request)]
        return "\n".join([*lines, f"call {self.status} after {self.duration} s"])


# --- how requests reach our app -----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Our app's answer; status 0 with `failure` when no HTTP answer came at all."""

    status: int
    content_type: str
    body: str
    failure: str = ""


class Transport(Protocol):
    """Delivers a signed webhook request to the public URL Twilio would call."""

    def post(self, url: str, form: dict[str, str]) -> Reply: ...

    def get(self, url: str) -> Reply: ...


class AsyncTransport(Protocol):
    """A Transport for many calls at once in one event loop (the load benchmark)."""

    async def post(self, url: str, form: dict[str, str]) -> Reply: ...

    async def get(self, url: str) -> Reply: ...


@dataclass(frozen=True)
class Send:
    """A request the simulated Twilio makes next; its driver delivers it and sends the Reply back.

    `turn` is false for a request whose TwiML nobody runs (status callback, an action after the call
    ended); `acted` says the caller did something (keys or silence) since the previous request;
    `played_s` is how long the call went on at Twilio's end since then, on the simulated clock: the
    prompts played, the keys pressed, the silences waited out. A real Twilio sends this request only
    after that much time.
    """

    url: str
    method: str
    form: dict[str, str]
    turn: bool = True
    acted: bool = False
    played_s: float = 0.0


# A call as a generator of requests: the TwiML rules without I/O, shared by a sync and an async driver.
Steps: TypeAlias = Generator[Send, Reply, "Transcript"]


def drive(steps: Steps, transport: Transport) -> Transcript:
    """Run a call to its end, each request delivered by `transport` as it comes."""
    try:
        send = next(steps)
        while True:
            url = _with_query(send.url, send.form) if send.method == "GET" else send.url
            reply = transport.get(url) if send.method == "GET" else transport.post(url, send.form)
            send = steps.send(reply)
    except StopIteration as ended:
        return ended.value


async def drive_async(
    steps: Steps, transport: AsyncTransport, before: Callable[[Send], Awaitable[None]] | None = None
) -> Transcript:
    """`drive` in an event loop; `before` may wait first (the caller's think time)."""
    try:
        send = next(steps)
        while True:
            if before is not None:
                await before(send)
            url = _with_query(send.url, send.form) if send.method == "GET" else send.url
            reply = await (transport.get(url) if send.method == "GET" else transport.post(url, send.form))
            send = steps.send(reply)
    except StopIteration as ended:
        return ended.value


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, form))


def twilio_headers(auth_token: str, url: str, form: dict[str, str]) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: twilio_signature(auth_token, url, form),
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "User-Agent": "TwilioProxy/1.1",
    }


Signer: TypeAlias = Callable[[str, str, dict[str, str]], dict[str, str]]  # (token, URL, form) → headers


def as_account(form: dict[str, str], account_sid: str) -> dict[str, str]:
    """The form as Twilio sends it for `account_sid`, the account whose token signs it (when known)."""
    return {**form, "AccountSid": account_sid} if account_sid and "AccountSid" in form else form


def local_part(public_url: str, url: str) -> str | None:
    """Path and query of `url` behind our public URL; None when Twilio would call another host."""
    base = public_url.rstrip("/")
    if not url.startswith(base) or url[len(base) : len(base) + 1] not in ("", "/", "?"):
        return None
    return url[len(base) :] or "/"


def _elsewhere(url: str) -> Reply:
    return Reply(0, "", "", failure=f"{url} is not under the public URL this transport serves")


@dataclass
class FlaskTransport:
    """Requests into a Flask test client, signed over the public URL as Twilio signs them, for the
    account the app is configured with (or `account_sid`)."""

    client: FlaskClient
    public_url: str
    auth_token: str
    account_sid: str = ""
    sign: Signer = field(default=lambda token, url, form: twilio_headers(token, url, form))

    def post(self, url: str, form: dict[str, str]) -> Reply:
        return self._send("POST", url, form)

    def get(self, url: str) -> Reply:
        return self._send("GET", url, {})

    def _send(self, method: str, url: str, form: dict[str, str]) -> Reply:
        path = local_part(self.public_url, url)
        if path is None:
            return _elsewhere(url)
        form = as_account(form, self.account_sid or _account_of(self.client))
        headers = self.sign(self.auth_token, url, form)
        answer = self.client.open(path, method=method, data=form or None, headers=headers, follow_redirects=True)
        return Reply(answer.status_code, answer.content_type or "", answer.get_data(as_text=True))


def _account_of(client: FlaskClient) -> str:
    runtime = client.application.extensions.get("sewamitra")
    return str(runtime.settings.twilio.account_sid or "") if runtime is not None else ""


@dataclass
class HttpTransport:
    """Real HTTP to a running server at `base_url`, signed over `public_url` (the proxy's view), for
    the account `account_sid` when given."""

    base_url: str
    public_url: str
    auth_token: str
    timeout: float = 15
    account_sid: str = ""
    sign: Signer = field(default=lambda token, url, form: twilio_headers(token, url, form))

    def post(self, url: str, form: dict[str, str]) -> Reply:
        return self._send(url, form, post=True)

    def get(self, url: str) -> Reply:
        return self._send(url, {}, post=False)

    def _send(self, url: str, form: dict[str, str], *, post: bool) -> Reply:
        path = local_part(self.public_url, url)
        if path is None:
            return _elsewhere(url)
        form = as_account(form, self.account_sid)
        data = urllib.parse.urlencode(form).encode() if post else None
        headers = self.sign(self.auth_token, url, form)
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, headers=headers)
        failure = ""
        for _attempt in range(2):  # Twilio tries once more when it cannot connect
            try:
                return self._open(request)
            except urllib.error.URLError as error:
                failure = f"cannot connect: {error.reason}"
        return Reply(0, "", "", failure=failure)

    def _open(self, request: urllib.request.Request) -> Reply:
        """One attempt; a URLError (no connection) is left to `_send` to retry."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return _http_reply(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            return _http_reply(error.code, error.headers, error.read())
        except urllib.error.URLError:
            raise
        except OSError as error:  # connected, then no answer in time or a dropped connection: no retry
            return Reply(0, "", "", failure=f"no answer: {error or type(error).__name__}")


@dataclass
class SandboxMoves:
    """The REST moves a sandbox in another process recorded (`sewamitra up`'s), for `CallSetup.moved`:
    each asked of it over HTTP, `POST /_sandbox/moves/{call}`, and taken once. Only the call's own
    move is asked for: a move of a call nobody simulates stays in the sandbox, followed by nobody.
    A sandbox that does not answer (`up` stopped) has moved nothing."""

    base_url: str
    timeout: float = 5
    _waiting: dict[str, str] = field(default_factory=dict)  # moves taken early, to be followed

    def __call__(self, call_sid: str) -> str | None:
        """The URL `call_sid` was moved to since it last asked, if any."""
        return self._waiting.pop(call_sid, None) or self._take(call_sid)

    def waiting(self, call_sid: str) -> bool:
        """Whether `call_sid` was moved and has yet to follow (the move kept here until it does)."""
        if call_sid not in self._waiting and (url := self._take(call_sid)):
            self._waiting[call_sid] = url
        return call_sid in self._waiting

    def _take(self, call_sid: str) -> str | None:
        path = urllib.parse.quote(call_sid, safe="")
        request = urllib.request.Request(f"{self.base_url.rstrip('/')}/_sandbox/moves/{path}", data=b"")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                url = json.load(answer).get("url")
        except (OSError, ValueError, AttributeError):
            return None
        return url if isinstance(url, str) and url else None


def _http_reply(status: int, headers: Message, body: bytes) -> Reply:
    charset = headers.get_content_charset() or "utf-8"
    return Reply(status, headers.get("Content-Type", ""), body.decode(charset, errors="replace"))


# --- the caller's keys ----------------------------------------------------------------------------


@runtime_checkable
class KeySource(Protocol):
    """Where the caller's next key item comes from; None when the caller has nothing left and hangs up."""

    def next_key(self) -> str | None: ...


def key_item(raw: str) -> str:
    """One caller action in canonical form, so scripts may write `-`, `` or `Agent`."""
    item = raw.strip().lower()
    if item in ("", SILENCE):
        return SILENCE
    if item in (AGENT, HANGUP) or set(item) <= DTMF_KEYS or SPEECH.match(item):
        return item
    raise ValueError(f"not a key item: {raw!r} (keys 0-9 * #, '-' for silence, 'say:N', 'agent' or 'hangup')")


def parse_keys(script: str) -> list[str]:
    """`"2,1,,226001#"` -> ["2", "1", "-", "226001#"]: each item is what the caller does at one prompt."""
    return [key_item(part) for part in script.split(",")] if script.strip() else []


class ScriptedKeys:
    """A fixed list of key items, used in order: the test's side of the call."""

    def __init__(self, items: Iterable[str]) -> None:
        self._items = [key_item(item) for item in items]
        self._next = 0

    def next_key(self) -> str | None:
        if self._next >= len(self._items):
            return None
        self._next += 1
        return self._items[self._next - 1]

    def remaining(self) -> list[str]:
        return self._items[self._next :]


class TerminalKeys:
    """Key items typed by a person, one a line; the end of input hangs up.

    With `cut_short` (whether the platform has moved the call by REST meanwhile), the wait at the
    prompt ends as soon as it is true, as a silence: a move cuts into whatever the call was playing,
    so the caller is taken on without typing anything (the call follows the move at its next step).
    """

    PROMPT = "keys (digits, Enter = silence, say:N to speak N s at a beep, agent, hangup)> "

    def __init__(self, inp: TextIO, out: TextIO, *, cut_short: Callable[[], bool] | None = None) -> None:
        self.inp, self.out = inp, out
        self.cut_short = cut_short
        self._typed = b""  # read from the terminal, not yet a whole line

    def next_key(self) -> str | None:
        while True:
            self.out.write(self.PROMPT)
            self.out.flush()
            line = self._line()
            if line is None:
                return None
            if not line:  # the call was moved: the caller is taken on, silent
                self.out.write("\n")
                return SILENCE
            try:
                return key_item(line)
            except ValueError as error:
                self.out.write(f"{error}\n")

    def _line(self) -> str | None:
        """The next line typed (ending in a newline, unless the input ended); "" when a move came
        first; None at the end of input."""
        descriptor = _descriptor(self.inp) if self.cut_short is not None else None
        if descriptor is None:
            return self.inp.readline() or None
        while b"\n" not in self._typed:
            if select.select([descriptor], [], [], TERMINAL_POLL_S)[0]:
                chunk = os.read(descriptor, 4096)
                if not chunk:
                    typed, self._typed = self._typed, b""
                    return typed.decode(errors="replace") or None
                self._typed += chunk
            elif self.cut_short is not None and self.cut_short():
                return ""
        line, _, self._typed = self._typed.partition(b"\n")
        return line.decode(errors="replace") + "\n"


def _descriptor(stream: TextIO) -> int | None:
    """The file descriptor under a terminal or pipe, read directly so that waiting on it can be cut
    short; None for a stream without one (a test's StringIO)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class _Keys:
    """The caller's key items with a look-ahead of one, so a queue can see an agent coming."""

    def __init__(self, source: KeySource) -> None:
        self._source = source
        self._ahead: list[str | None] = []
        self.taken = 0

    @classmethod
    def of(cls, keys: Iterable[str] | KeySource) -> _Keys:
        if isinstance(keys, str):
            return cls(ScriptedKeys(parse_keys(keys)))
        return cls(keys if isinstance(keys, KeySource) else ScriptedKeys(keys))

    def peek(self) -> str | None:
        if not self._ahead:
            self._ahead.append(self._source.next_key())
        return self._ahead[0]

    def take(self) -> str | None:
        item = self.peek()
        self._ahead.clear()
        if item is not None:
            self.taken += 1
        return item

    def unused(self) -> list[str]:
        ahead = [item for item in self._ahead if item is not None]
        return ahead + (self._source.remaining() if isinstance(self._source, ScriptedKeys) else [])


# --- TwiML documents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fetch:
    """A TwiML document Twilio is about to request."""

    url: str
    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)
    fallback: bool = False


@dataclass(frozen=True)
class _Document:
    url: str
    root: ElementTree.Element


@dataclass
class _Queue:
    """The caller's stay in one queue."""

    name: str
    entered: float
    sid: str = field(default_factory=lambda: _sid("QU"))


_Outcome: TypeAlias = "_Fetch | Literal['leave'] | None"
T = TypeVar("T")
_Io: TypeAlias = Generator[Send, Reply, T]  # a step of the call that may make requests, returning a T


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _text(element: ElementTree.Element) -> str:
    """An element's text, SSML children included, with whitespace folded as speech would."""
    return " ".join("".join(element.itertext()).split())


def _resolve(base: str, ref: str | None) -> str:
    """A TwiML URL made absolute against the current document, as a browser would."""
    return urllib.parse.urldefrag(urllib.parse.urljoin(base, (ref or "").strip())).url


def _with_query(url: str, form: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(form) if form else url


def _mimetype(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _problem(reply: Reply) -> str:
    """A failed answer in one line: the status and the start of what the app said."""
    if reply.status == 0:
        return reply.failure
    return f"HTTP {reply.status}: {' '.join(reply.body.split())[:120]}"


def _document_of(url: str, reply: Reply) -> _Document | Failure:
    """What Twilio makes of an answer: TwiML to run, or the error it would log."""
    if reply.status == 0:
        return Failure(TwilioError.HTTP_CONNECTION_FAILURE, reply.failure, url)
    if not 200 <= reply.status < 300:
        return Failure(TwilioError.HTTP_RETRIEVAL_FAILURE, _problem(reply), url)
    mimetype = _mimetype(reply.content_type)
    if mimetype.startswith("audio/"):
        return _Document(url, _playing(url))
    if mimetype not in TWIML_CONTENT_TYPES:
        return Failure(TwilioError.INVALID_CONTENT_TYPE, f"content type {reply.content_type!r} is not TwiML", url)
    if len(reply.body.encode()) > MAX_TWIML_BYTES:
        return Failure(TwilioError.RESPONSE_TOO_LARGE, f"TwiML over {MAX_TWIML_BYTES} bytes", url)
    return _parse(url, reply.body)


def _playing(url: str) -> ElementTree.Element:
    """The TwiML Twilio runs for an audio answer: play it, then the call ends."""
    root = ElementTree.Element("Response")
    ElementTree.SubElement(root, "Play").text = url
    return root


def _parse(url: str, body: str) -> _Document | Failure:
    try:
        root = ElementTree.fromstring(body.encode())
    except ElementTree.ParseError as error:
        return Failure(TwilioError.DOCUMENT_PARSE_FAILURE, f"not XML: {error}", url)
    if root.tag != "Response":
        return Failure(TwilioError.DOCUMENT_PARSE_FAILURE, f"root element is <{root.tag}>, not <Response>", url)
    return _Document(url, root)


def collect_digits(keys: str, finish_on_key: str, num_digits: int | None) -> tuple[str, bool]:
    """The Digits a Gather takes from one key item, and whether it then waited for its timeout."""
    digits = ""
    for key in keys:
        if finish_on_key and key == finish_on_key:
            return digits or key, False  # a lone finish key is posted as itself
        digits += key
        if num_digits and len(digits) >= num_digits:
            return digits, False
    return digits, True


def _dial_targets(verb: ElementTree.Element) -> list[Dialed]:
    nouns = [Dialed(_text(noun), noun.tag.lower()) for noun in verb]
    return nouns or [Dialed(_text(verb))]


class _Ended(Exception):
    """The call is over: unwinds whatever document or queue was running."""

    def __init__(self, by: Ender) -> None:
        super().__init__(by)
        self.by = by


class _Fatal(Exception):
    """A failure Twilio treats as fatal to the document: it requests the fallback URL."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


# --- the simulator --------------------------------------------------------------------------------


@dataclass
class CallSetup:
    """Who calls whom and where Twilio posts: one simulated call, whatever delivers its requests."""

    _: KW_ONLY
    public_url: str
    from_number: str = "+919876543210"
    to_number: str = "+18005550100"
    call_sid: str | None = None
    voice_path: str = "/twilio/voice"
    direction: str = "inbound"  # "outbound-api" for a call the helpline placed (from_number is then ours)
    status_path: str = "/twilio/voice/status"
    fallback_path: str = "/twilio/voice/fallback"
    max_turns: int = 200
    queue_position: int = 1
    callee: Callee = field(default_factory=Callee)  # whoever a <Dial><Number> rings
    queue_head: str | None = None  # the caller a <Dial><Queue> takes (its url is then requested on their call)
    account_sid: str = field(default_factory=lambda: _sid("AC"))
    media_url: str = "https://api.twilio.com"  # where the platform serves recordings (a sandbox's base URL)
    moved: Callable[[str], str | None] | None = None  # the URL this call was moved to by REST, if any (taken once)
    # The first request's own parameters: a browser's call (Twilio: `device.connect({params})`, each a
    # form field of the TwiML App's Voice URL request, twilio.com/docs/voice/sdks/javascript/twiliodevice;
    # Plivo: `client.call(to, extraHeaders)`, each `X-PH-` header a parameter of the answer URL's,
    # plivo.com/docs/voice/sdk/browser/reference).
    connect_params: dict[str, str] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    in_room: Callable[[str], None] | None = None  # what happens while this leg is in a room (others' legs, REST)

    def steps(self, keys: Iterable[str] | KeySource) -> Steps:
        """The call, pressing `keys` one item at each prompt, as requests for a driver to deliver."""
        return _Call(self, _Keys.of(keys)).run()

    def url(self, path: str) -> str:
        return self.public_url.rstrip("/") + path


@dataclass
class CallSimulator(CallSetup):
    """Places simulated inbound calls against our webhooks; one `run` is one call."""

    transport: Transport

    def run(self, keys: Iterable[str] | KeySource) -> Transcript:
        """Call the helpline and press `keys`, one item at each prompt; returns what happened."""
        return drive(self.steps(keys), self.transport)


class _Call:
    """One call's state: Twilio's side of it (documents, clock, queue) and the caller's keys."""

    def __init__(self, simulator: CallSetup, keys: _Keys) -> None:
        self.sim = simulator
        self.keys = keys
        self.transcript = Transcript(call_sid=simulator.call_sid or _sid("CA"))
        self.call_status = "ringing"
        self.started = datetime.now(UTC)
        self.clock = 0.0
        self.turns = 0
        self.redirects = 0
        self.answered = False
        self.acted_at = 0  # the caller's key items taken when the previous request went out
        self.sent_at = 0.0  # the clock when the previous request went out

    def run(self) -> Steps:
        try:
            yield from self._run(_Fetch(self.sim.url(self.sim.voice_path), params=dict(self.sim.connect_params)), None)
            self._hang_up("app")  # the TwiML ran out: Twilio ends the call
        except _Ended:
            pass
        yield from self._finish()
        return self.transcript

    # requests

    def _emit(self, event: Event) -> None:
        self.transcript.events.append(event)
        if self.sim.on_event is not None:
            self.sim.on_event(event)

    def _form(self, params: dict[str, str]) -> dict[str, str]:
        sim = self.sim
        call = {"CallSid": self.transcript.call_sid, "AccountSid": sim.account_sid}
        parties = {"From": sim.from_number, "To": sim.to_number, "Caller": sim.from_number, "Called": sim.to_number}
        state = {"CallStatus": self.call_status, "Direction": sim.direction, "ApiVersion": API_VERSION}
        return {**call, **parties, **state, **params}

    def _send(self, url: str, method: str, params: dict[str, str], *, turn: bool = True) -> _Io[Reply]:
        form = self._form(params)
        acted, self.acted_at = self.keys.taken != self.acted_at, self.keys.taken
        played, self.sent_at = self.clock - self.sent_at, self.clock
        reply = yield Send(url, method, form, turn, acted, played)
        self._emit(Request(url, form, reply.status, method))
        return reply

    def _notify(self, fetch: _Fetch) -> _Io[None]:
        """A request whose TwiML nobody runs (status callback, actions after the call ended)."""
        reply = yield from self._send(fetch.url, fetch.method, fetch.params, turn=False)
        if not 200 <= reply.status < 300:
            self._emit(Failure(TwilioError.HTTP_RETRIEVAL_FAILURE, _problem(reply), fetch.url))

    def _load(self, fetch: _Fetch) -> _Io[_Document]:
        self.turns += 1
        if self.turns > self.sim.max_turns:
            self._emit(Failure(None, f"the call did not end within {self.sim.max_turns} requests", fetch.url))
            self._hang_up("caller")
        reply = yield from self._send(fetch.url, fetch.method, fetch.params)
        self.call_status = "in-progress"
        loaded = _document_of(fetch.url, reply)
        if isinstance(loaded, Failure):
            raise _Fatal(loaded)
        return loaded

    # documents

    def _run(self, fetch: _Fetch, queue: _Queue | None) -> _Io[Literal["leave"] | None]:
        """Fetch and run documents until one runs out, ends the call or leaves the queue."""
        outcome: _Outcome = fetch
        while isinstance(outcome, _Fetch):
            current = outcome if queue is not None else self._moved() or outcome
            try:
                outcome = yield from self._execute((yield from self._load(current)), queue)
            except _Fatal as fatal:
                outcome = self._recover(current, fatal.failure)
        return outcome

    def _moved(self) -> _Fetch | None:
        """The document the REST API moved this call to since its last step, if any."""
        url = self.sim.moved(self.transcript.call_sid) if self.sim.moved else None
        if url is None:
            return None
        self._emit(Moved(url))
        return _Fetch(url, "POST")

    def _recover(self, fetch: _Fetch, failure: Failure) -> _Fetch:
        """Twilio's answer to a fatal error: the fallback URL, and if that fails too, its own apology."""
        self._emit(failure)
        if fetch.fallback:
            self._emit(Heard(APPLICATION_ERROR))
            self._hang_up("twilio")
        params = {"ErrorCode": str(int(failure.code or 0)), "ErrorUrl": failure.url or fetch.url}
        return _Fetch(self.sim.url(self.sim.fallback_path), "POST", params, fallback=True)

    def _execute(self, document: _Document, queue: _Queue | None) -> _Io[_Outcome]:
        """Run a document's verbs; a REST move cuts into it before its next verb (in a queue's wait
        document, before its next round: `_wait`)."""
        for verb in document.root:
            outcome = yield from self._verb(verb, document, queue)
            if outcome is not None:
                return outcome
            moved = self._moved() if queue is None else None
            if moved is not None:
                return moved
        return None

    def _verb(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Io[_Outcome]:
        if verb.tag not in (CALL_VERBS if queue is None else WAIT_VERBS):
            self._unsupported(verb, "in <Response>" if queue is None else "in a waitUrl document")
            return None
        self.answered = self.answered or verb.tag != "Reject"
        if verb.tag in AUDIO_VERBS:
            self._audio(verb)
            return None
        if verb.tag in _REQUESTING_VERBS:
            return (yield from _REQUESTING_VERBS[verb.tag](self, verb, document, queue))
        return _VERBS[verb.tag](self, verb, document, queue)

    def _unsupported(self, verb: ElementTree.Element, where: str) -> None:
        if verb.tag in NOT_SIMULATED:
            self._emit(Failure(None, f"<{verb.tag}> is real TwiML but this simulator does not run it"))
        else:
            self._emit(Failure(TwilioError.SCHEMA_VALIDATION_WARNING, f"<{verb.tag}> is not allowed {where}"))

    def _number(self, verb: ElementTree.Element, name: str, default: int) -> int:
        value = verb.get(name)
        try:
            return default if value is None else int(value)
        except ValueError:
            message = f"<{verb.tag} {name}={value!r}> is not a number"
            self._emit(Failure(TwilioError.SCHEMA_VALIDATION_WARNING, message))
            return default

    # verbs

    def _audio(self, verb: ElementTree.Element) -> None:
        loop = self._number(verb, "loop", 1)
        if verb.tag == "Say":
            text = _text(verb)
            self._emit(Heard(text, verb.get("language", "en-US"), verb.get("voice", ""), loop))
            self._pass(len(text) / SAY_CHARS_PER_SECOND * max(loop, 1), heard=True)
        elif verb.tag == "Play":
            self._emit(Played(_text(verb), loop))
            self._pass(PLAY_SECONDS * max(loop, 1), heard=True)
        else:
            seconds = self._number(verb, "length", 1)
            self._emit(Paused(seconds))
            self._pass(seconds)

    def _pass(self, seconds: float, *, heard: bool = False) -> None:
        self.clock += seconds
        if heard:
            self.redirects = 0

    def _action(self, verb: ElementTree.Element, document: _Document, params: dict[str, str]) -> _Fetch:
        url = _resolve(document.url, verb.get("action"))
        return _Fetch(url, verb.get("method", "POST").upper(), params)

    def _gather(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Outcome:
        for child in verb:
            if child.tag in AUDIO_VERBS:
                self._audio(child)
            else:
                self._unsupported(child, "in <Gather>")
        self.redirects = 0  # a Gather is progress, whatever the caller does
        timeout = self._number(verb, "timeout", 5)
        item = self._take(queue)
        if item == SILENCE:
            self._emit(Silence(timeout))
            self._pass(timeout)
            empty = verb.get("actionOnEmptyResult", "false").lower() == "true"
            return self._action(verb, document, {"Digits": ""}) if empty else None
        num_digits = self._number(verb, "numDigits", 0) or None
        digits, waited = collect_digits(item, verb.get("finishOnKey", "#"), num_digits)
        self._emit(Pressed(item))
        self._pass(KEY_SECONDS * len(item) + (timeout if waited else 0))
        return self._action(verb, document, {"Digits": digits})

    def _take(self, queue: _Queue | None) -> str:
        """The caller's next key item at a prompt; a hang-up or an agent acts at once."""
        item = self.keys.take()
        if item is None or item == HANGUP:
            self._hang_up("caller")
        if item != AGENT:
            return item
        if queue is not None:
            self._emit(Bridged())
            self._pass(AGENT_TALK_SECONDS)
            self._hang_up("agent")
        self._emit(Failure(None, "the key script says 'agent' but the caller is in no queue; taken as silence"))
        return SILENCE

    def _redirect(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Outcome:
        url = _resolve(document.url, _text(verb))
        self.redirects += 1
        if self.redirects > MAX_REDIRECTS:
            self.redirects = 0
            message = f"more than {MAX_REDIRECTS} <Redirect>s in a row with nothing said or gathered"
            raise _Fatal(Failure(TwilioError.TOO_MANY_REDIRECTS, message, url))
        return _Fetch(url, verb.get("method", "POST").upper())

    def _hangup(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Outcome:
        self._hang_up("app")

    def _reject(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Outcome:
        if self.answered:
            self._hang_up("app")
        self._hang_up("app", "busy" if verb.get("reason") == "busy" else "no-answer")

    def _leave(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Outcome:
        if queue is None:
            self._emit(Failure(TwilioError.SCHEMA_VALIDATION_WARNING, "<Leave> outside a queue does nothing"))
            return None
        return "leave"

    def _dial(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Io[_Outcome]:
        if any(noun.tag == "Number" for noun in verb):
            return (yield from self._dial_number(verb, document))
        if any(noun.tag == "Conference" for noun in verb):
            return (yield from self._conference(verb, document))
        for target in _dial_targets(verb):
            self._emit(target)
        yield from self._dequeue(verb, document)
        self._pass(AGENT_TALK_SECONDS, heard=True)
        if verb.get("action") is None:
            return None  # without an action Twilio goes on with the next verb
        result = {"DialCallStatus": "completed", "DialCallSid": _sid("CA")}
        return self._action(verb, document, {**result, "DialCallDuration": str(AGENT_TALK_SECONDS)})

    def _conference(self, verb: ElementTree.Element, document: _Document) -> _Io[_Outcome]:
        """<Dial><Conference>: in the room until it ends or the call is moved out (the module's docstring);
        a recorded room's recording posted when it ends."""
        [room] = [noun for noun in verb if noun.tag == "Conference"]
        self._emit(Dialed(_text(room), "conference"))
        muted, call_sid = room.get("muted", "false").lower() == "true", self.transcript.call_sid
        moved = self.in_room(InRoom(_text(room), call_sid, muted, room.get("coach", ""), member=call_sid))
        yield from self._room_recorded(verb, document)
        if moved is not None:
            return moved
        if verb.get("action") is None:
            return None
        duration = {"DialCallDuration": str(AGENT_TALK_SECONDS)}
        return self._action(verb, document, {"DialCallStatus": "completed", "DialCallSid": _sid("CA"), **duration})

    def in_room(self, joined: InRoom) -> _Fetch | None:
        """Talk in a room: the leg is in it as `joined` says (`muted` heard by nobody, `coach` heard by
        that participant only), and whatever the test says happens meanwhile (`CallSetup.in_room`)
        happens; then each key item left is a moment of talk (what happens on the line between
        them happens while they talk) until the script ends or hangs up; then the room ends. The
        move out of it, if the REST API moves the call meanwhile (the items after it are for there)."""
        self._emit(Bridged())
        self._emit(joined)
        if self.sim.in_room is not None:
            self.sim.in_room(joined.room)
        while True:
            item = self.keys.peek()
            moved = self._moved()
            if moved is not None:
                return moved
            if item in (None, HANGUP):
                break
            self.keys.take()
            self._pass(KEY_SECONDS)
        self._pass(AGENT_TALK_SECONDS, heard=True)
        return None

    def _room_recorded(self, verb: ElementTree.Element, document: _Document) -> _Io[None]:
        """A recorded <Conference>'s recordingStatusCallback once the room's talk is over."""
        for noun in verb:
            callback = noun.get("recordingStatusCallback")
            if noun.tag != "Conference" or noun.get("record") != "record-from-start" or not callback:
                continue
            sid = _sid("RE")
            made = {"ConferenceSid": _sid("CF"), "RecordingSid": sid, "RecordingUrl": self._recording_url(sid)}
            made |= {"RecordingStatus": "completed", "RecordingDuration": str(AGENT_TALK_SECONDS)}
            made |= {"RecordingChannels": "1", "RecordingSource": "DialConference"}
            method = noun.get("recordingStatusCallbackMethod", "POST").upper()
            yield from self._notify(_Fetch(_resolve(document.url, callback), method, made))

    def _dequeue(self, verb: ElementTree.Element, document: _Document) -> _Io[None]:
        """A <Dial><Queue url=…> takes the caller at the queue's head (`CallSetup.queue_head`, when the
        test names one): Twilio requests the Queue's url on that caller's call, then bridges them."""
        head = self.sim.queue_head
        for noun in verb:
            if noun.tag == "Queue" and noun.get("url") and head:
                params = {"CallSid": head, "DequeingCallSid": self.transcript.call_sid, "QueueSid": _sid("QU")}
                url = _resolve(document.url, noun.get("url"))
                yield from self._notify(_Fetch(url, noun.get("method", "POST").upper(), params | {"QueueTime": "0"}))
                self._emit(Bridged())

    def _dial_number(self, verb: ElementTree.Element, document: _Document) -> _Io[_Outcome]:
        """<Dial><Number> by Twilio's rules (the module's docstring): ring, talk within timeLimit, the
        recording's callback when it was recorded, the action."""
        numbers = [noun for noun in verb if noun.tag == "Number"]
        if len(numbers) != len(verb):
            self._emit(Failure(None, "<Dial> with a <Number> and other nouns is real TwiML but not simulated"))
        caller_id = verb.get("callerId", self.sim.from_number)
        self._emit(Rang(_text(numbers[0]), caller_id))
        answered = self._ring(self._number(verb, "timeout", 30), self._number(verb, "timeLimit", 14400))
        callback = verb.get("recordingStatusCallback")
        if (
            answered.status == "completed"
            and verb.get("record", "do-not-record").startswith("record-from")
            and callback
        ):
            sid = _sid("RE")
            made = {"RecordingSid": sid, "RecordingUrl": self._recording_url(sid), "RecordingStatus": "completed"}
            made |= {"RecordingDuration": str(math.ceil(answered.seconds)), "RecordingChannels": "1"}
            made |= {"RecordingSource": "DialVerb"}
            method = verb.get("recordingStatusCallbackMethod", "POST").upper()
            yield from self._notify(_Fetch(_resolve(document.url, callback), method, made))
        if verb.get("action") is None:
            return None
        result = {"DialCallStatus": answered.status, "DialCallSid": _sid("CA")}
        if answered.status == "completed":
            result |= {"DialCallDuration": str(math.ceil(answered.seconds)), "DialBridged": "true"}
        return self._action(verb, document, result)

    def _ring(self, timeout: int, time_limit: int) -> Talked:
        """The dialled phone as `CallSetup.callee` behaves, the call's clock moved on by the ringing and the talk."""
        callee = self.sim.callee
        if callee.answers == "completed":
            talked = Talked("completed", min(callee.talks, time_limit), time_limit)
            self._pass(talked.seconds, heard=True)
        else:
            talked = Talked(callee.answers)
            self._pass(timeout if callee.answers == "no-answer" else 1)
        self._emit(talked)
        return talked

    def _record(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Io[_Outcome]:
        """The beep, then what the caller says (a `say:N` item; `-` or any other item, nothing: an
        empty recording goes on to the next verb, and only a `-` is spent on it); the recording's id,
        URL and length go to the action."""
        speech = self._speech(verb)
        if speech is None:
            return None
        seconds, ended, lost = speech
        sid = _sid("RE")
        recording = {"RecordingSid": sid, "RecordingUrl": self._recording_url(sid), "RecordingDuration": str(seconds)}
        if lost:
            recording = {"RecordingDuration": str(seconds)}
        fetch = self._action(verb, document, {**recording, "Digits": ended})
        if ended == "hangup":
            yield from self._hang_up_then("caller", fetch)
        return fetch

    def _speech(self, verb: ElementTree.Element) -> tuple[int, str, bool] | None:
        """How long the caller spoke, what ended it (a key, "" for silence or the limit, "hangup") and
        whether the platform lost it; None for an empty recording."""
        timeout, limit = self._number(verb, "timeout", 5), self._number(verb, "maxLength", 3600)
        finish = verb.get("finishOnKey", "1234567890*#")
        if verb.get("playBeep", "true").lower() == "true":
            self._emit(Played("beep"))
        item = self.keys.peek()
        spoken = SPEECH.match(item or "")
        if spoken is None or int(spoken["seconds"]) == 0:
            if spoken is not None:
                self.keys.take()
                self._emit(Pressed(spoken["end"] or "#"))
            else:
                if item == SILENCE:
                    self.keys.take()  # the caller keeps silent at the beep: their `-` is spent here
                self._emit(Silence(timeout))
                self._pass(timeout)
            return None
        self.keys.take()
        seconds = min(int(spoken["seconds"]), limit)
        self._emit(Recorded(seconds))
        self._pass(seconds, heard=True)
        if spoken["end"] == "#" and "#" in finish and seconds < limit:
            self._emit(Pressed("#"))
            return seconds, "#", False
        if seconds < limit:
            self._pass(timeout)
        if self.keys.peek() is None:
            return seconds, "hangup", spoken["end"] == "!"
        return seconds, "", spoken["end"] == "!"

    def _recording_url(self, sid: str) -> str:
        return f"{self.sim.media_url.rstrip('/')}/{API_VERSION}/Accounts/{self.sim.account_sid}/Recordings/{sid}"

    # queues

    def _enqueue(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Io[_Outcome]:
        stay = _Queue(_text(verb), entered=self.clock)
        self._emit(Queued(stay.name))
        action = self._action(verb, document, {}) if verb.get("action") else None
        wait = verb.get("waitUrl")
        wait_fetch = _Fetch(_resolve(document.url, wait), verb.get("waitUrlMethod", "POST").upper()) if wait else None
        try:
            moved = yield from self._wait(stay, wait_fetch)
        except _Ended as ended:
            if action is not None:  # Twilio still tells the action how the stay ended; nobody runs its TwiML
                result = "bridged" if ended.by == "agent" else "hangup"
                yield from self._notify(replace(action, params=self._queue_result(stay, result)))
            raise
        if moved is not None:  # its action hears it, its TwiML is not run: the call goes on with the new URL
            if action is not None:
                yield from self._notify(replace(action, params=self._queue_result(stay, "redirected")))
            return moved
        return replace(action, params=self._queue_result(stay, "leave")) if action else None

    def _wait(self, stay: _Queue, wait: _Fetch | None) -> _Io[_Fetch | None]:
        """Hold the caller in the queue, running the wait TwiML again and again, until they leave it
        (None) or the REST API moves them out of it (the document they go to)."""
        while True:
            self._agent_or_hangup(stay)
            moved = self._moved()
            if moved is not None:
                return moved
            taken, started = self.keys.taken, self.clock
            if (yield from self._hold_round(stay, wait)) == "leave":
                return None
            self.clock = max(self.clock, started + 1)
            if self.keys.taken == taken:
                self._idle(stay)

    def _agent_or_hangup(self, stay: _Queue) -> None:
        """Between two rounds of hold music an agent may answer or the caller may give up."""
        if self.keys.peek() in (HANGUP, AGENT):
            self._take(stay)

    def _hold_round(self, stay: _Queue, wait: _Fetch | None) -> _Io[Literal["leave"] | None]:
        if wait is None:
            self._emit(Played(DEFAULT_HOLD_MUSIC))
            self._pass(PLAY_SECONDS, heard=True)
            return None
        return (yield from self._run(replace(wait, params=self._queue_params(stay)), stay))

    def _idle(self, stay: _Queue) -> None:
        """A round in which nobody asked for input uses up one key item: silence waits, keys go unheard."""
        item = self.keys.peek()
        if item is None:  # out of key items after a round of hold music: the caller gives up
            self._take(stay)
        elif item not in (AGENT, HANGUP):
            self.keys.take()
            if item != SILENCE:
                self._emit(Pressed(item, ignored=True))

    def _queue_params(self, stay: _Queue) -> dict[str, str]:
        size = str(self.sim.queue_position)
        position = {"QueueSid": stay.sid, "QueuePosition": size, "CurrentQueueSize": size}
        times = {"QueueTime": str(int(self.clock - stay.entered)), "AvgQueueTime": "0"}
        return {**position, **times, "MaxQueueSize": str(MAX_QUEUE_SIZE)}

    def _queue_result(self, stay: _Queue, result: str) -> dict[str, str]:
        return {"QueueResult": result, "QueueSid": stay.sid, "QueueTime": str(int(self.clock - stay.entered))}

    # the end

    def _hang_up(self, by: Ender, status: str = "completed") -> NoReturn:
        """End the call now."""
        self._emit(Hangup(by))
        self.call_status = status
        raise _Ended(by)

    def _hang_up_then(self, by: Ender, then: _Fetch) -> _Io[NoReturn]:
        """End the call now; `then` is an action Twilio still requests afterwards."""
        self._emit(Hangup(by))
        self.call_status = "completed"
        yield from self._notify(then)
        raise _Ended(by)

    def _finish(self) -> _Io[None]:
        transcript = self.transcript
        transcript.status = self.call_status
        transcript.duration = math.ceil(self.clock) if self.answered else 0
        transcript.unused_keys = self.keys.unused()
        ended = email.utils.format_datetime(self.started + timedelta(seconds=transcript.duration))
        params = {"CallDuration": str(transcript.duration), "Timestamp": ended, "SequenceNumber": "0"}
        yield from self._notify(_Fetch(self.sim.url(self.sim.status_path), "POST", params))


_VerbHandler: TypeAlias = Callable[[_Call, ElementTree.Element, _Document, "_Queue | None"], _Outcome]
_VERBS: dict[str, _VerbHandler] = {
    "Gather": _Call._gather,
    "Redirect": _Call._redirect,
    "Hangup": _Call._hangup,
    "Reject": _Call._reject,
    "Leave": _Call._leave,
}
# Verbs whose handling may itself make requests (the queue's waitUrl, an action after a hang-up).
_RequestingVerb: TypeAlias = Callable[[_Call, ElementTree.Element, _Document, "_Queue | None"], "_Io[_Outcome]"]
_REQUESTING_VERBS: dict[str, _RequestingVerb] = {
    "Record": _Call._record,
    "Enqueue": _Call._enqueue,
    "Dial": _Call._dial,
}


# --- the terminal ---------------------------------------------------------------------------------


class SignatureRefused(Exception):
    """The helpline answered 403: it checks signatures over another public URL than the one signed over."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url

    def explanation(self, public_url: str) -> str:
        return (
            f"the helpline refused the request's signature (HTTP 403). The simulator signs as Twilio does, over "
            f"the public URL {public_url}; the helpline checks signatures over its own public_url, and the two "
            "must match: give both the same SEWAMITRA_PUBLIC_URL (or public_url in config.yaml), the URL the "
            "helpline was started with"
        )


@dataclass
class _RefusalStops:
    """`simulate`'s transport: a 403 is our signature refused, and Twilio's spoken apology would not say so."""

    inner: HttpTransport

    def post(self, url: str, form: dict[str, str]) -> Reply:
        return self._checked(url, self.inner.post(url, form))

    def get(self, url: str) -> Reply:
        return self._checked(url, self.inner.get(url))

    def _checked(self, url: str, reply: Reply) -> Reply:
        if reply.status == 403:
            raise SignatureRefused(url)
        return reply


def simulate_command(
    url: str,
    *,
    public_url: str,
    auth_token: str,
    from_number: str,
    keys: str | None,
    out: TextIO,
    inp: TextIO,
    account_sid: str = "",
    platform: str = "twilio",
    sandbox_url: str | None = None,
) -> Transcript:
    """`sewamitra simulate`: one call to a running server, told as it happens; keys from `keys` or typed.
    On Plivo (`platform`), the call follows Plivo's XML rules and signatures (devtools.plivo_simulator).
    With the platform's sandbox at `sandbox_url` (`sewamitra up`'s), the call follows the moves the
    helpline asks of it by REST, as the platform would: at once, even while the caller waits at the prompt."""

    def tell(event: Event) -> None:
        if not isinstance(event, Request):
            print(event.line(), file=out, flush=True)

    call_sid = str(uuid.uuid4()) if platform == "plivo" else _sid("CA")
    moves = SandboxMoves(sandbox_url) if sandbox_url else None
    if platform == "plivo":
        from devtools.plivo_simulator import PlivoCallSimulator, plivo_headers

        place: type[CallSimulator] = PlivoCallSimulator
        http = HttpTransport(url, public_url, auth_token, sign=plivo_headers)
    else:
        place, http = CallSimulator, HttpTransport(url, public_url, auth_token, account_sid=account_sid)
    simulator = place(
        _RefusalStops(http),
        public_url=public_url,
        from_number=from_number,
        call_sid=call_sid,
        moved=moves,
        on_event=tell,
    )
    typed = TerminalKeys(inp, out, cut_short=functools.partial(moves.waiting, call_sid) if moves else None)
    try:
        transcript = simulator.run(typed if keys is None else parse_keys(keys))
    except SignatureRefused as refused:
        failure = Failure(None, refused.explanation(public_url), refused.url)
        print(failure.line(), file=out, flush=True)
        return Transcript(call_sid="", events=[failure], status="failed")
    summary = f"call {transcript.status} after {transcript.duration} s, ended by {transcript.ended_by}"
    print(f"{summary}; {len(transcript.errors)} error(s)", file=out, flush=True)
    return transcript
