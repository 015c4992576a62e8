"""A simulated caller on Plivo: places a call against the helpline's /plivo webhooks and runs the Plivo
XML answers as Plivo documents them, each request signed with the `plivo` SDK's own V3 signing code.

The rules simulated, from Plivo's documentation:

- Requests (plivo.com/docs/voice/xml/request): every request posts `CallUUID, From, To, CallStatus,
  Direction` (numbers as country code and digits, without '+'); the hangup URL also gets
  `Duration, BillDuration, HangupCause`. Signatures (plivo.com/docs/voice/xml/request/validation):
  `X-Plivo-Signature-V3` over the URL, the sorted POST parameters and `X-Plivo-Signature-V3-Nonce`.
- Speak (plivo.com/docs/voice/xml/speak): text read in `voice` (WOMAN by default, or a Polly voice)
  and `language` (en-US by default); `loop`.
- Play, Wait (`length`, 1 s by default), Redirect (a fully qualified URL, POST by default), Hangup.
- GetDigits (plivo.com/docs/voice/xml/getdigits): Speak and Play nest inside; `timeout` 5 s for the
  first key, `digitTimeout` 2 s between keys, `finishOnKey` '#' ('none' or '' disables it),
  `numDigits` 99, `retries` 1 (rounds of prompts and waiting), `redirect` true; the keys go to
  `action` (without the finish key); **with no input Plivo goes on to the next element**.
- Conference (plivo.com/docs/voice/xml/conference): the call joins the named room and talks until the
  room ends (endConferenceOnExit) or the call is transferred out of it, then goes on with the next
  element. One leg is simulated at a time: the other member is whoever the helpline put in that
  room. With `callbackUrl`, Plivo posts when the member enters and leaves
  (plivo.com/docs/voice/detailed-reference/xml/conference/using-callback-url): ConferenceAction
  (enter, exit), ConferenceName, ConferenceUUID, ConferenceMemberID and CallUUID. A member with
  `record` true has the room recorded (`recordFileFormat` mp3): when the room ends its callbackUrl
  is posted the event ConferenceAction "record" with ConferenceName, RecordUrl and RecordingID.
- A call transferred by the REST API (plivo.com/docs/voice/api/call/transfer-a-call: "an in-progress
  or ongoing call" fetches and runs the XML at `aleg_url`, by `aleg_method`, POST by default):
  `CallSetup.moved` tells the simulator (the sandbox's `moved`, or `SandboxMoves` asking `up`'s
  sandbox in another process); the call leaves what it is doing at its next step (the next element
  of its XML, a room) and requests the new URL.
  A `muted` member hears the room and is heard by nobody (`InRoom`, for `devtools.rooms`); as the
  leg enters, `CallSetup.in_room` runs what the test says happens meanwhile.
- Dial with a Number (plivo.com/docs/voice/xml/dial, and the parameters it sends its action:
  plivo.com/docs/voice/use-cases/dial-status-reporting): the number (digits, no '+') rings showing
  `callerId`; the dialled phone (`CallSetup.callee`) answers, rings out after `timeout`, is busy or
  cannot be reached; once connected they talk until it hangs up or `timeLimit` (14400 s by default)
  runs out. Then Plivo requests `action` (fully qualified, POST by default) with DialStatus
  (completed, busy, failed, no-answer), DialRingStatus, DialHangupCause, DialALegUUID, DialBLegUUID
  (empty when nobody answered) and DialBLegDuration (the B leg's seconds, when it answered), and
  with `redirect` (true by default) runs the XML it answers (redirect=false is not simulated).
- Record (plivo.com/docs/voice/xml/record): a beep (`playBeep`), then the caller speaks until
  `finishOnKey` ('#' by default), `timeout` seconds of silence (15) or `maxLength` (60); with
  `redirect` (true) Plivo requests `action` with RecordUrl, RecordingID, RecordingDuration,
  RecordingDurationMs, RecordingStartMs, RecordingEndMs and Digits. The page does not say what an
  empty recording posts: the simulator requests the action with RecordingDuration "-1" and no
  RecordUrl or RecordingID (the helpline takes anything under a second, or without a URL, as
  nothing said). Key items as for the Twilio simulator: `say:N`, `say:N#`, `say:N!` (lost).
  With `startOnDialAnswer` (true) the Record waits for the next Dial instead, no beep: an answered
  dial is recorded from the answer and, the recording ready, Plivo posts `callbackUrl` (POST by
  `callbackMethod`) with RecordUrl, RecordingID, RecordingDuration, RecordingDurationMs,
  RecordingStartMs and RecordingEndMs; `redirect` false goes straight on to the next element.
- XML elements Plivo knows that the helpline does not use (GetInput, …) are reported
  as not simulated; an unknown element is an error, as Plivo logs it.

    sewamitra simulate --platform plivo --keys 2,1,1,226001#,1,9
"""

from __future__ import annotations

import math
import secrets
import uuid
from dataclasses import KW_ONLY, dataclass, replace
from datetime import timedelta
from typing import NoReturn
from xml.etree import ElementTree

from plivo.utils.signature_v3 import construct_post_url, get_signature_v3

from devtools.simulator import (
    AGENT_TALK_SECONDS,
    KEY_SECONDS,
    PLAY_SECONDS,
    SAY_CHARS_PER_SECOND,
    SILENCE,
    CallSetup,
    CallSimulator,
    Dialed,
    Failure,
    Heard,
    InRoom,
    Paused,
    Played,
    Pressed,
    Rang,
    Silence,
    Steps,
    Talked,
    _Call,
    _Document,
    _Ended,
    _Fatal,
    _Fetch,
    _Io,
    _Keys,
    _Outcome,
    _Queue,
    _text,
    collect_digits,
)

SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
AUDIO = frozenset({"Speak", "Play", "Wait"})
NOT_SIMULATED = frozenset({"GetInput", "PreAnswer", "DTMF", "Message", "Stream"})
DIAL_HANGUP_CAUSES = {"completed": "NORMAL_CLEARING", "busy": "USER_BUSY", "no-answer": "NO_ANSWER"}
MAX_REDIRECTS = 10
GETDIGITS_DEFAULTS = {"timeout": 5, "digitTimeout": 2, "numDigits": 99, "retries": 1}


def plivo_headers(auth_token: str, url: str, form: dict[str, str]) -> dict[str, str]:
    """The headers Plivo signs a POST with: the SDK's own V3 signature over the URL and parameters."""
    nonce = str(secrets.randbelow(10**20)).zfill(20)
    signed = construct_post_url(url, dict(form)).decode("utf-8")
    signature = get_signature_v3(auth_token.encode(), signed, nonce.encode())
    return {SIGNATURE_HEADER: signature.decode(), NONCE_HEADER: nonce, "User-Agent": "PlivoHTTP/1.0"}


def plivo_number(number: str) -> str:
    """A number as Plivo posts it: country code and digits, no '+'."""
    return number.removeprefix("+")


@dataclass
class PlivoCallSetup(CallSetup):
    """One call on Plivo, whatever delivers its requests (the load benchmark drives many at once)."""

    _: KW_ONLY
    voice_path: str = "/plivo/voice"
    status_path: str = "/plivo/voice/status"
    fallback_path: str = "/plivo/voice/fallback"
    direction: str = "inbound"
    media_url: str = "https://media.plivo.com"

    def steps(self, keys: object) -> Steps:
        return _PlivoCall(self, _Keys.of(keys)).run()  # type: ignore[arg-type]


@dataclass
class PlivoCallSimulator(CallSimulator):
    """Places simulated calls the way Plivo does, against the helpline's /plivo webhooks."""

    _: KW_ONLY
    voice_path: str = "/plivo/voice"
    status_path: str = "/plivo/voice/status"
    fallback_path: str = "/plivo/voice/fallback"
    direction: str = "inbound"  # "outbound" for a call the helpline placed
    media_url: str = "https://media.plivo.com"

    def steps(self, keys: object) -> Steps:
        return _PlivoCall(self, _Keys.of(keys)).run()  # type: ignore[arg-type]


class _PlivoCall(_Call):
    """One call on Plivo's side: its requests, its XML rules, its hangup callback."""

    def __init__(self, simulator: CallSetup, keys: _Keys) -> None:
        super().__init__(simulator, keys)
        self.transcript.call_sid = simulator.call_sid or str(uuid.uuid4())
        self.hangup_cause = "NORMAL_CLEARING"
        self.dial_recording: ElementTree.Element | None = None  # a Record waiting for the next Dial's answer

    def _form(self, params: dict[str, str]) -> dict[str, str]:
        sim = self.sim
        call = {"CallUUID": self.transcript.call_sid, "From": plivo_number(sim.from_number)}
        call |= {"To": plivo_number(sim.to_number), "CallStatus": self.call_status, "Direction": sim.direction}
        return {**call, **params}

    def _verb(self, verb: ElementTree.Element, document: _Document, queue: _Queue | None) -> _Io[_Outcome]:
        self.answered = True
        if verb.tag in AUDIO:
            self._plivo_audio(verb)
            return None
        handler = {"GetDigits": self._get_digits, "Redirect": self._plivo_redirect, "Hangup": self._plivo_hangup}
        if verb.tag == "Conference":
            return (yield from self._plivo_conference(verb))
        if verb.tag == "Dial":
            return (yield from self._recorded_dial(verb))
        if verb.tag in handler:
            return handler[verb.tag](verb)
        if verb.tag == "Record" and verb.get("startOnDialAnswer", "false").lower() == "true":
            self.dial_recording = verb  # armed for the next Dial; redirect=false: on to the next element
            return None
        if verb.tag == "Record":
            return (yield from self._plivo_record(verb, document))
        if verb.tag in NOT_SIMULATED:
            self._emit(Failure(None, f"<{verb.tag}> is real Plivo XML but this simulator does not run it"))
        else:
            self._emit(Failure(None, f"Plivo: <{verb.tag}> is not a Plivo XML element"))
        return None
        yield  # a generator, as the requesting verbs of the Twilio simulator are

    def _plivo_audio(self, verb: ElementTree.Element) -> None:
        loop = self._number(verb, "loop", 1)
        if verb.tag == "Speak":
            text = _text(verb)
            self._emit(Heard(text, verb.get("language", "en-US"), verb.get("voice", "WOMAN"), loop))
            self._pass(len(text) / SAY_CHARS_PER_SECOND * max(loop, 1), heard=True)
        elif verb.tag == "Play":
            self._emit(Played(_text(verb), loop))
            self._pass(PLAY_SECONDS * max(loop, 1), heard=True)
        else:
            seconds = self._number(verb, "length", 1)
            self._emit(Paused(seconds))
            self._pass(seconds)

    def _absolute(self, url: str, where: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise _Fatal(Failure(None, f"Plivo: {where} needs a fully qualified URL, not {url!r}", url))
        return url

    def _get_digits(self, verb: ElementTree.Element) -> _Outcome:
        """Play the prompts and wait for keys, `retries` rounds; with no input, the next element."""
        numbers = {name: self._number(verb, name, default) for name, default in GETDIGITS_DEFAULTS.items()}
        finish = verb.get("finishOnKey", "#")
        finish = "" if finish.lower() in ("", "none") else finish
        self.redirects = 0
        for _round in range(max(numbers["retries"], 1)):
            for child in verb:
                if child.tag in ("Speak", "Play"):
                    self._plivo_audio(child)
                else:
                    self._emit(Failure(None, f"Plivo: <{child.tag}> does not nest in <GetDigits>"))
            item = self._take(None)
            if item == SILENCE:
                self._emit(Silence(numbers["timeout"]))
                self._pass(numbers["timeout"])
                continue
            digits, waited = collect_digits(item, finish, numbers["numDigits"])
            self._emit(Pressed(item))
            self._pass(KEY_SECONDS * len(item) + (numbers["digitTimeout"] if waited else 0))
            action = self._absolute(verb.get("action", ""), "GetDigits action")
            if verb.get("redirect", "true").lower() != "true":
                self._emit(Failure(None, "GetDigits redirect=false is real Plivo XML but not simulated"))
            return _Fetch(action, verb.get("method", "POST").upper(), {"Digits": digits})
        return None

    def _plivo_record(self, verb: ElementTree.Element, document: _Document) -> _Io[_Outcome]:
        """The beep, what the caller says, then the action with the recording (or none: -1)."""
        for name, default in (("timeout", "15"), ("maxLength", "60"), ("finishOnKey", "#")):
            verb.set(name, verb.get(name, default))
        action = self._absolute(verb.get("action", ""), "Record action")
        speech = self._speech(verb)
        if speech is None:
            return _Fetch(action, verb.get("method", "POST").upper(), {"RecordingDuration": "-1", "Digits": ""})
        seconds, ended, lost = speech
        recording_id = str(uuid.uuid4())
        url = f"{self.sim.media_url.rstrip('/')}/v1/Account/{self.sim.account_sid}/Recording/{recording_id}.mp3"
        end_ms = int(self.started.timestamp() * 1000 + self.clock * 1000)
        made = {"RecordUrl": url, "RecordingID": recording_id} if not lost else {}
        made |= {"RecordingDuration": str(seconds), "RecordingDurationMs": str(seconds * 1000)}
        made |= {"RecordingStartMs": str(end_ms - seconds * 1000), "RecordingEndMs": str(end_ms), "Digits": ended}
        fetch = _Fetch(action, verb.get("method", "POST").upper(), made)
        if ended == "hangup":
            yield from self._hang_up_then("caller", fetch)
        return fetch

    def _plivo_conference(self, verb: ElementTree.Element) -> _Io[_Outcome]:
        """The call joins the room and talks (the simulator has one leg: whoever else is in the room,
        as the helpline arranged it, talks with it) until the room ends or it is moved out; then the
        next element, or the document it was moved to. Its callbackUrl hears it enter and leave, and,
        when this member records the room (`record`), the room's recording (ConferenceAction "record")."""
        room = _text(verb)
        self._emit(Dialed(room, "conference"))
        if verb.get("action"):
            self._emit(Failure(None, "Conference action is real Plivo XML but not simulated"))
        callback = verb.get("callbackUrl")
        member = {"ConferenceName": room, "ConferenceUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, room))}
        member |= {"ConferenceMemberID": str(secrets.randbelow(10**6) + 1)}
        method = verb.get("callbackMethod", "POST").upper()
        if callback:
            url = self._absolute(callback, "Conference callbackUrl")
            yield from self._notify(_Fetch(url, method, {**member, "ConferenceAction": "enter"}))
        muted = verb.get("muted", "false").lower() == "true"  # Plivo's members have no coach
        moved = self.in_room(InRoom(room, self.transcript.call_sid, muted, member=member["ConferenceMemberID"]))
        if callback:
            yield from self._notify(_Fetch(url, method, {**member, "ConferenceAction": "exit"}))
        if callback and verb.get("record", "false").lower() == "true":
            recording_id = str(uuid.uuid4())
            media = f"{self.sim.media_url.rstrip('/')}/v1/Account/{self.sim.account_sid}/Recording/{recording_id}.mp3"
            made = {"ConferenceAction": "record", "ConferenceName": room, "ConferenceUUID": member["ConferenceUUID"]}
            made |= {"RecordUrl": media, "RecordingID": recording_id, "RecordingDuration": str(AGENT_TALK_SECONDS)}
            yield from self._notify(_Fetch(url, method, made))
        return moved

    def _recorded_dial(self, verb: ElementTree.Element) -> _Io[_Outcome]:
        """A Dial; when a Record with startOnDialAnswer came before it and the dialled phone answered,
        the recording's callbackUrl once the talk is over."""
        recording, self.dial_recording = self.dial_recording, None
        outcome = self._plivo_dial(verb)
        talked = [event for event in self.transcript.events if isinstance(event, Talked)]
        if recording is None or not talked or talked[-1].status != "completed" or not recording.get("callbackUrl"):
            return outcome
        seconds = math.ceil(talked[-1].seconds)
        recording_id = str(uuid.uuid4())
        url = f"{self.sim.media_url.rstrip('/')}/v1/Account/{self.sim.account_sid}/Recording/{recording_id}.mp3"
        end_ms = int(self.started.timestamp() * 1000 + self.clock * 1000)
        made = {"RecordUrl": url, "RecordingID": recording_id, "RecordingDuration": str(seconds)}
        made |= {"RecordingDurationMs": str(seconds * 1000), "RecordingStartMs": str(end_ms - seconds * 1000)}
        made |= {"RecordingEndMs": str(end_ms)}
        callback = self._absolute(recording.get("callbackUrl", ""), "Record callbackUrl")
        yield from self._notify(_Fetch(callback, recording.get("callbackMethod", "POST").upper(), made))
        return outcome

    def _plivo_dial(self, verb: ElementTree.Element) -> _Outcome:
        """Dial a Number by Plivo's rules (the module's docstring): ring, talk within timeLimit, action."""
        numbers = [noun for noun in verb if noun.tag == "Number"]
        if not numbers or len(numbers) != len(verb):
            self._emit(Failure(None, "Plivo: only a Dial with one Number is simulated"))
            return None
        caller_id = verb.get("callerId", plivo_number(self.sim.from_number))
        self._emit(Rang(_text(numbers[0]), caller_id))
        answered = self._ring(self._number(verb, "timeout", 30), self._number(verb, "timeLimit", 14400))
        if verb.get("action") is None:
            return None
        action = self._absolute(verb.get("action", ""), "Dial action")
        connected = answered.status == "completed"
        result = {
            "DialStatus": answered.status,
            "DialRingStatus": "true" if answered.status in ("completed", "no-answer") else "false",
            "DialHangupCause": DIAL_HANGUP_CAUSES.get(answered.status, "UNALLOCATED_NUMBER"),
            "DialALegUUID": self.transcript.call_sid,
            "DialBLegUUID": str(uuid.uuid4()) if connected else "",
        }
        if connected:
            result["DialBLegDuration"] = str(math.ceil(answered.seconds))
        if verb.get("redirect", "true").lower() != "true":
            self._emit(Failure(None, "Dial redirect=false is real Plivo XML but not simulated"))
        return _Fetch(action, verb.get("method", "POST").upper(), result)

    def _plivo_redirect(self, verb: ElementTree.Element) -> _Outcome:
        url = self._absolute(_text(verb), "Redirect")
        self.redirects += 1
        if self.redirects > MAX_REDIRECTS:
            self.redirects = 0
            raise _Fatal(Failure(None, f"more than {MAX_REDIRECTS} <Redirect>s in a row with nothing said", url))
        return _Fetch(url, verb.get("method", "POST").upper())

    def _plivo_hangup(self, verb: ElementTree.Element) -> NoReturn:
        self.hangup_cause = "NORMAL_CLEARING"
        self._hang_up("app")

    def _recover(self, fetch: _Fetch, failure: Failure) -> _Fetch:
        """Plivo requests the application's fallback URL when a URL fails; after that, it hangs up.
        (The failure is told as Plivo's, without the Twilio debugger code the shared parser gives it.)"""
        self._emit(replace(failure, code=None, message=f"Plivo: {failure.message}"))
        if fetch.fallback:
            self.hangup_cause = "XML_PARSE_ERROR"
            raise _Ended("twilio")
        return _Fetch(self.sim.url(self.sim.fallback_path), "POST", {}, fallback=True)

    def _finish(self) -> _Io[None]:
        """The hangup URL: how long the call lasted and why it ended."""
        transcript = self.transcript
        transcript.status = self.call_status
        transcript.duration = math.ceil(self.clock) if self.answered else 0
        transcript.unused_keys = self.keys.unused()
        ended = self.started + timedelta(seconds=transcript.duration)
        params = {
            "Duration": str(transcript.duration),
            "BillDuration": str(60 * math.ceil(transcript.duration / 60)),
            "HangupCause": self.hangup_cause if self.call_status == "completed" else "NO_ANSWER",
            "StartTime": self.started.strftime("%Y-%m-%d %H:%M:%S"),
            "EndTime": ended.strftime("%Y-%m-%d %H:%M:%S"),
            "Event": "Hangup",
        }
        yield from self._notify(_Fetch(self.sim.url(self.sim.status_path), "POST", params))
