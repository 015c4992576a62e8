"""A local stand-in for Twilio's REST API: records what the helpline asks to send, so tests and the
one-box demo run without Twilio.

It answers the two calls the gateway makes (Messages.json, Calls.json) the way Twilio does (201
with Twilio's JSON, 400/401 with Twilio's error JSON), records each accepted message and call, and
can be told to fail or stall the next requests, or to fail every request for a while.

It also runs the live-call control the console uses (`telephony.port.CallControl`), recording each
request (`control`): a call moved to new TwiML, `POST …/Calls/{CA}.json` with `Url`
(twilio.com/docs/voice/api/call-resource#update-a-call-resource; the move waits in `moved(call)` for
the simulated call to take it, or for a simulated call in another process to take it by
`POST /_sandbox/moves/{call}`, answered `{"call", "url"}`, the URL null when nothing moved it); the
conferences in progress read by `FriendlyName`, `GET …/Conferences.json`
(twilio.com/docs/voice/api/conference-resource: every room named is in progress here, its sid made
from its name, until a test says it ended, `end_room`); a participant held
(`Hold`, `HoldUrl`), muted (`Muted`) or coaching one other participant (`Coaching`, `CallSidToCoach`),
`POST …/Conferences/{CF}/Participants/{CA}.json`
(twilio.com/docs/voice/api/conference-participant-resource#update-a-participant-resource).

It also holds the recordings a simulated caller made at a <Record> (twilio.com/docs/voice/twiml/record:
the action gets RecordingSid, RecordingUrl, RecordingDuration): their media is served at the
RecordingUrl, `GET /2010-04-01/Accounts/{AC}/Recordings/{RE}` (.mp3/.wav, as Twilio serves it), and
deleted by `DELETE …/Recordings/{RE}.json` (twilio.com/docs/voice/api/recording#delete-a-recording-resource:
204, then 404 for it); every fetch and delete is recorded (`recording_requests`). Other
processes read it over HTTP under `/_sandbox/`.

An agent's call recorded in a conference room is paused and resumed through the Conference Recording
resource (twilio.com/docs/voice/api/conference-recording-resource), as the same live-call control:
the room found by `FriendlyName` as above, then `POST …/Conferences/{CF}/Recordings/Twilio.CURRENT.json`
with `Status` paused or in-progress and `PauseBehavior` (skip, silence) is answered 200 with the
recording (404 for a conference never listed, 400 for another Status), recorded in `control`
("recording.update").

It listens on loopback only: it holds citizens' numbers and has no real security.

    python -m devtools.twilio_sandbox --port 8099 --account-sid AC... --auth-token ...
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import email.utils
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
ACCOUNT_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/(?P<resource>Messages|Calls)\.json$")
CONFERENCE_RECORDING_PATH = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Conferences/(?P<conference>CF[0-9a-f]{{32}})"
    r"/Recordings/(?P<recording>Twilio\.CURRENT|RE[0-9a-f]{32})\.json$"
)
RECORDING_STATUSES = frozenset({"paused", "in-progress", "stopped"})
RECORDING_PATH = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Recordings/(?P<recording>RE[0-9a-f]{{32}})(?P<ext>\.json|\.mp3|\.wav)?$"
)
CALL_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls/(?P<call>CA[0-9a-fA-F]{{32}})\.json$")
CONFERENCES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Conferences\.json$")
PARTICIPANT_PATH = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Conferences/(?P<conference>CF[0-9a-f]{{32}})"
    rf"/Participants/(?P<call>CA[0-9a-fA-F]{{32}})\.json$"
)
# What a recording's media is in the sandbox: a few bytes with an MP3 frame header, not a person's voice.
RECORDING_AUDIO = b"\xff\xfb\x90\x00" + b"\x00" * 412
SANDBOX_PREFIX = "/_sandbox"
MOVES_PATH = re.compile(rf"^{SANDBOX_PREFIX}/moves/(?P<call>[A-Za-z0-9-]{{1,64}})$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
MAX_BODY_CHARS = 1600
DEFAULT_CALL_TIMEOUT = 60
MAX_REQUEST_BYTES = 1 << 20
IDLE_CONNECTION_S = 60  # an idle client connection is closed after this long
SHUTDOWN_POLL = 0.01  # seconds: how soon stop() is noticed: every test stops one, so its teardown stays quick

# Twilio's own error codes, as its API answers them.
AUTHENTICATE = 20003
NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
INTERNAL_ERROR = 20500
SERVICE_UNAVAILABLE = 20503
CALL_INVALID = 21200
CALL_TO_MISSING = 21201
CALL_URL_MISSING = 21205
INVALID_TO = 21211
CALL_FROM_MISSING = 21213
MESSAGE_BODY_MISSING = 21602
MESSAGE_FROM_MISSING = 21603
MESSAGE_TO_MISSING = 21604
MESSAGE_TOO_LONG = 21617
CODE_FOR_STATUS = {429: TOO_MANY_REQUESTS, 500: INTERNAL_ERROR, 503: SERVICE_UNAVAILABLE}

# Message and call statuses Twilio reports when it has just accepted a request.
QUEUED = "queued"
ACCEPTED = "accepted"  # a message sent through a Messaging Service, before a sender is chosen
OUTBOUND_API = "outbound-api"

# GSM 03.38: the basic set costs one septet, the extension set two; anything else forces UCS-2.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class SandboxRefusal(Exception):
    """A request Twilio would refuse: carries the HTTP status and Twilio's error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO.format(code=self.code),
            "status": self.status,
        }


@dataclass(frozen=True)
class Fault:
    """What to do to one upcoming API request: stall it, then maybe answer with an error status."""

    delay: float = 0.0
    status: int | None = None


def num_segments(body: str) -> int:
    """How many SMS segments Twilio bills for `body`: Devanagari forces UCS-2 (70, then 67 each)."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body):
        units, single, part = sum(2 if char in GSM7_EXTENSION else 1 for char in body), GSM7_SINGLE, GSM7_PART
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, UCS2_SINGLE, UCS2_PART
    return 1 if units <= single else math.ceil(units / part)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only; the sandbox refuses to listen anywhere else."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rfc2822(moment: datetime) -> str:
    return email.utils.format_datetime(moment)


def _require(form: dict[str, str], field: str, code: int, message: str) -> str:
    value = form.get(field, "")
    if not value:
        raise SandboxRefusal(HTTPStatus.BAD_REQUEST, code, message)
    return value


def _require_e164(number: str) -> None:
    if not E164.match(number):
        raise SandboxRefusal(
            HTTPStatus.BAD_REQUEST, INVALID_TO, f"The 'To' number {number} is not a valid phone number."
        )


def _message_resource(account_sid: str, form: dict[str, str], now: datetime) -> dict[str, Any]:
    """Validate a Messages.json form as Twilio does and build the resource Twilio would return."""
    to = _require(form, "To", MESSAGE_TO_MISSING, "A 'To' phone number is required.")
    body = _require(form, "Body", MESSAGE_BODY_MISSING, "Message body is required.")
    sender, service = form.get("From") or None, form.get("MessagingServiceSid") or None
    if not sender and not service:
        raise SandboxRefusal(HTTPStatus.BAD_REQUEST, MESSAGE_FROM_MISSING, "A 'From' phone number is required.")
    _require_e164(to)
    if len(body) > MAX_BODY_CHARS:
        raise SandboxRefusal(
            HTTPStatus.BAD_REQUEST, MESSAGE_TOO_LONG, f"The message body exceeds the {MAX_BODY_CHARS} character limit."
        )
    sid = f"SM{uuid.uuid4().hex}"
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": _rfc2822(now),
        "date_sent": None,
        "date_updated": _rfc2822(now),
        "direction": OUTBOUND_API,
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": str(num_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": QUEUED if sender else ACCEPTED,
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def _call_resource(account_sid: str, form: dict[str, str], now: datetime) -> dict[str, Any]:
    """Validate a Calls.json form as Twilio does and build the resource Twilio would return."""
    to = _require(form, "To", CALL_TO_MISSING, "No 'To' number is specified.")
    sender = _require(form, "From", CALL_FROM_MISSING, "A 'From' phone number is required.")
    if not form.get("Url") and not form.get("Twiml"):
        raise SandboxRefusal(HTTPStatus.BAD_REQUEST, CALL_URL_MISSING, "A 'Url' or 'Twiml' parameter is required.")
    _require_e164(to)
    if not form.get("Timeout", str(DEFAULT_CALL_TIMEOUT)).isdigit():
        raise SandboxRefusal(HTTPStatus.BAD_REQUEST, CALL_INVALID, "Timeout must be a whole number of seconds.")
    sid = f"CA{uuid.uuid4().hex}"
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}"
    return {
        "account_sid": account_sid,
        "annotation": None,
        "answered_by": None,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": _rfc2822(now),
        "date_updated": _rfc2822(now),
        "direction": OUTBOUND_API,
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": sender,
        "from_formatted": sender,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sid,
        "start_time": None,
        "status": QUEUED,
        "subresource_uris": {"recordings": f"{uri}/Recordings.json"},
        "to": to,
        "to_formatted": to,
        "trunk_sid": None,
        "uri": f"{uri}.json",
    }


def _conference_sid(room: str) -> str:
    return "CF" + hashlib.md5(room.encode(), usedforsecurity=False).hexdigest()


def _message_record(resource: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    return {**resource, "status_callback": form.get("StatusCallback"), "params": form}


def _call_record(resource: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    return {
        **resource,
        "url": form.get("Url"),
        "method": form.get("Method", "POST"),
        "twiml": form.get("Twiml"),
        "timeout": int(form.get("Timeout", DEFAULT_CALL_TIMEOUT)),
        "status_callback": form.get("StatusCallback"),
        "params": form,
    }


RESOURCES: dict[str, tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]] = {
    "Messages": (_message_resource, _message_record),
    "Calls": (_call_resource, _call_record),
}


class TwilioSandbox:
    """Twilio's Messages and Calls API on a loopback port, recording every accepted request."""

    name = "Twilio"

    def __init__(self, account_sid: str, auth_token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ValueError(f"the Twilio sandbox listens on loopback only, not {host!r}")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self._records: dict[str, list[dict[str, Any]]] = {"Messages": [], "Calls": [], "Recordings": [], "Control": []}
        self._rooms: dict[str, str] = {}  # a conference's sid → its room, as listed
        self._moves: dict[str, str] = {}  # call → the URL it was moved to, until the simulated call takes it
        self._ended: set[str] = set()  # rooms no longer in progress (their last leg left)
        self._deleted_recordings: set[str] = set()
        self._faults: deque[Fault] = deque()
        self._failing_until = 0.0  # time.monotonic(): every API request until then is answered with an error
        self._failing_status = int(HTTPStatus.INTERNAL_SERVER_ERROR)
        self.refused = 0  # API requests answered with an injected error, for whoever counts them
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server: _SandboxServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        """Listen and serve in a background thread; return the base URL to give the client."""
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        self._server = _SandboxServer((self.host, self.port), self, self.handler())
        self.port = self._server.server_address[1]
        serve = functools.partial(self._server.serve_forever, poll_interval=SHUTDOWN_POLL)
        self._thread = threading.Thread(target=serve, name="twilio-sandbox", daemon=True)
        self._thread.start()
        log.info("%s sandbox listening on %s", self.name, self.base_url)
        return self.base_url

    def stop(self) -> None:
        """Stop serving and wake any stalled request, so a test never waits on an injected delay."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.cut_connections()
        if self._thread is not None:
            self._thread.join()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- what was sent -----------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._records["Messages"])

    @property
    def calls(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._records["Calls"])

    @property
    def recording_requests(self) -> list[dict[str, Any]]:
        """Every fetch and delete of a recording: method, recording id, whether it was authenticated."""
        with self._changed:
            return list(self._records["Recordings"])

    @property
    def control(self) -> list[dict[str, Any]]:
        """Every accepted request on a live call or room: `action` ("call.update", "conference.list",
        "participant.update", "recording.update"), `call`, `room`, and the form (`params`)."""
        with self._changed:
            return list(self._records["Control"])

    def moved(self, call_sid: str) -> str | None:
        """The URL a live call was moved to by REST since it last asked, if any (taken once)."""
        with self._changed:
            return self._moves.pop(call_sid, None)

    def end_room(self, room: str) -> None:
        """The room's legs have all left it (the sandbox runs no calls: the test says so): no longer
        in progress, so not listed, and its members not there to change."""
        with self._changed:
            self._ended.add(room)

    def in_progress(self, room: str) -> bool:
        with self._changed:
            return room not in self._ended

    def handle_control(
        self, account_sid: str, action: str, ids: dict[str, str], authorization: str, form: dict[str, str]
    ) -> dict[str, Any]:
        """One live-call request: faults, credentials and account as for the others, then recorded."""
        fault = self._next_fault()
        if fault and fault.status:
            with self._changed:
                self.refused += 1
            raise SandboxRefusal(
                fault.status, CODE_FOR_STATUS.get(fault.status, fault.status), f"Injected failure ({fault.status})."
            )
        if not self._authenticated(authorization):
            raise SandboxRefusal(HTTPStatus.UNAUTHORIZED, AUTHENTICATE, "Authenticate")
        if account_sid != self.account_sid:
            raise SandboxRefusal(HTTPStatus.NOT_FOUND, NOT_FOUND, f"The account {account_sid} was not found")
        room = ids.get("room") or self._rooms.get(ids.get("conference", ""), "")
        if action == "recording.update":
            return self._room_recording(account_sid, ids, room, form)
        if action == "call.update":
            if not form.get("Url") and not form.get("Twiml") and not form.get("Status"):
                raise SandboxRefusal(
                    HTTPStatus.BAD_REQUEST, CALL_URL_MISSING, "A 'Url' or 'Twiml' parameter is required."
                )
            with self._changed:
                if form.get("Url"):
                    self._moves[ids["call"]] = form["Url"]
        self._record("Control", {"action": action, "call": ids.get("call"), "room": room, "params": form})
        now = _rfc2822(datetime.now(UTC))
        if action == "conference.list":
            with self._changed:
                self._rooms[_conference_sid(room)] = room
            found = [
                {"sid": _conference_sid(room), "friendly_name": room, "status": "in-progress", "date_created": now}
            ]
            listed = found if room and self.in_progress(room) else []
            return {"conferences": listed, "page": 0, "page_size": 50, "next_page_uri": None, "uri": "/"}
        if action == "participant.update":
            hold, muted = form.get("Hold", "false") == "true", form.get("Muted", "false") == "true"
            return {
                "call_sid": ids["call"],
                "conference_sid": ids["conference"],
                "hold": hold,
                "muted": muted,
                "coaching": form.get("Coaching", "false") == "true",
                "call_sid_to_coach": form.get("CallSidToCoach") or None,
                "status": "connected",
            }
        return {"sid": ids["call"], "status": "in-progress", "account_sid": account_sid, "date_updated": now}

    def _room_recording(self, account_sid: str, ids: dict[str, str], room: str, form: dict[str, str]) -> dict[str, Any]:
        """A room's recording paused or resumed: 200 with the recording; 404 for a conference not
        listed (not in progress), 400 for a Status Twilio does not take."""
        status = form.get("Status", "")
        if status not in RECORDING_STATUSES:
            raise SandboxRefusal(HTTPStatus.BAD_REQUEST, CALL_INVALID, f"Invalid Status: {status[:40]!r}")
        if not room:
            raise SandboxRefusal(HTTPStatus.NOT_FOUND, NOT_FOUND, f"The conference {ids['conference']} was not found")
        recording = ids["recording"]
        self._record("Control", {"action": "recording.update", "call": None, "room": room, "params": form})
        sid = recording if recording.startswith("RE") else "RE" + uuid.uuid4().hex
        return {"sid": sid, "conference_sid": ids["conference"], "account_sid": account_sid, "status": status}

    # -- recordings --------------------------------------------------------------------------------

    recording_path = RECORDING_PATH

    def handle_recording(self, method: str, account: str, recording: str, authorization: str) -> int:
        """A recording's media fetched (200) or the recording deleted (204); 404 once deleted. A
        delete needs the account's credentials (401 without); media is served to whoever has its URL,
        as Twilio's is unless the account asks for HTTP auth on media."""
        authorized = self._authenticated(authorization)
        fault = self._next_fault()  # injected failures meet these requests too
        if fault and fault.delay:
            self._stopping.wait(fault.delay)
        if fault and fault.status:
            with self._changed:
                self.refused += 1
            return fault.status
        self._record("Recordings", {"method": method, "recording_id": recording, "authorized": authorized})
        if method == "DELETE" and not authorized:
            return HTTPStatus.UNAUTHORIZED
        if account != self.account_sid:
            return HTTPStatus.NOT_FOUND
        with self._changed:
            if recording in self._deleted_recordings:
                return HTTPStatus.NOT_FOUND
            if method == "DELETE":
                self._deleted_recordings.add(recording)
                return HTTPStatus.NO_CONTENT
        return HTTPStatus.OK

    def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The messages, once at least `n` have arrived: sends happen in background jobs."""
        return self._wait_for("Messages", n, timeout)

    def wait_for_calls(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The calls, once at least `n` have been placed."""
        return self._wait_for("Calls", n, timeout)

    def _wait_for(self, resource: str, n: int, timeout: float) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._records[resource]) >= n, timeout):
                got = len(self._records[resource])
                raise TimeoutError(
                    f"waited {timeout}s for {n} {resource.lower()} in the {self.name} sandbox, got {got}"
                )
            return list(self._records[resource])

    def clear(self) -> None:
        """Forget every record and pending fault, so one test does not see another's."""
        with self._changed:
            for records in self._records.values():
                records.clear()
            self._faults.clear()
            self._moves.clear()
            self._rooms.clear()
            self._ended.clear()

    # -- fault injection ---------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        """Answer the next `n` API requests with `status` and Twilio's error JSON, recording nothing."""
        if not HTTPStatus.BAD_REQUEST <= status < 600:
            raise ValueError(f"a failure needs an error status (400-599), not {status}")
        self._add_faults(n, Fault(status=int(status)))

    def fail_after(self, ok: int, status: int = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        """Let the next `ok` API requests through, then answer one with `status` (a failure midway
        through several requests)."""
        self._add_faults(ok, Fault())
        self.fail_next(1, status)

    def delay_next(self, n: int, seconds: float) -> None:
        """Stall the next `n` API requests, then handle them: Twilio too may send what a client gave up on."""
        self._add_faults(n, Fault(delay=float(seconds)))

    def fail_for(self, seconds: float, status: int = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        """Answer every API request with `status` for the next `seconds` (an outage, not a count)."""
        if not HTTPStatus.BAD_REQUEST <= status < 600:
            raise ValueError(f"a failure needs an error status (400-599), not {status}")
        with self._changed:
            self._failing_until, self._failing_status = time.monotonic() + float(seconds), int(status)

    @property
    def failing(self) -> bool:
        with self._changed:
            return time.monotonic() < self._failing_until

    @property
    def faults_left(self) -> int:
        """Faults injected but not yet met by a request: 0 once a stalled request has arrived."""
        with self._changed:
            return len(self._faults)

    def _add_faults(self, n: int, fault: Fault) -> None:
        if n < 0:
            raise ValueError("n must not be negative")
        with self._changed:
            self._faults.extend([fault] * n)

    def _next_fault(self) -> Fault | None:
        with self._changed:
            if time.monotonic() < self._failing_until:
                return Fault(status=self._failing_status)
            return self._faults.popleft() if self._faults else None

    # -- the API -----------------------------------------------------------------------------------

    def handle_api(self, account_sid: str, resource: str, authorization: str, form: dict[str, str]) -> dict[str, Any]:
        """Answer one API request as Twilio would; raise SandboxRefusal where Twilio would refuse."""
        fault = self._next_fault()
        if fault and fault.delay and self._stopping.wait(fault.delay):
            raise SandboxRefusal(HTTPStatus.SERVICE_UNAVAILABLE, SERVICE_UNAVAILABLE, "The sandbox is stopping.")
        if fault and fault.status:
            with self._changed:
                self.refused += 1
            code = CODE_FOR_STATUS.get(fault.status, fault.status)
            raise SandboxRefusal(fault.status, code, f"Injected failure ({fault.status}).")
        if not self._authenticated(authorization):
            raise SandboxRefusal(HTTPStatus.UNAUTHORIZED, AUTHENTICATE, "Authenticate")
        if account_sid != self.account_sid:
            raise SandboxRefusal(HTTPStatus.NOT_FOUND, NOT_FOUND, f"The account {account_sid} was not found")
        build, record = RESOURCES[resource]
        answer = build(account_sid, form, datetime.now(UTC))
        self._record(resource, {**record(answer, form), "received_at": datetime.now(UTC).isoformat()})
        return answer

    def _authenticated(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = f"{self.account_sid}:{self.auth_token}".encode()
        return hmac.compare_digest(f"{user}:{password}".encode(), expected)

    def _record(self, resource: str, record: dict[str, Any]) -> None:
        with self._changed:
            self._records[resource].append(record)
            self._changed.notify_all()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """What answers each HTTP request: the platform's API paths and the sandbox's own."""
        return _SandboxHandler

    def apply_faults(self, spec: dict[str, Any]) -> None:
        """Faults from another process: {"fail_next": n, "status": 500}, {"fail_for": seconds, "status": 500}
        and/or {"delay_next": n, "seconds": s}."""
        if spec.get("fail_for"):
            self.fail_for(float(spec["fail_for"]), int(spec.get("status", HTTPStatus.INTERNAL_SERVER_ERROR)))
        if spec.get("fail_next"):
            self.fail_next(int(spec["fail_next"]), int(spec.get("status", HTTPStatus.INTERNAL_SERVER_ERROR)))
        if spec.get("delay_next"):
            self.delay_next(int(spec["delay_next"]), float(spec["seconds"]))


class _SandboxServer(ThreadingHTTPServer):
    """The HTTP server, refusing anything but loopback peers and holding the sandbox for handlers. It
    keeps each client's connection open for its next request, as Twilio's API does (HTTP/1.1; the
    Python SDK's `TwilioHttpClient` sends every request through one `requests.Session`), and cuts the
    connections still open when the sandbox stops, so a platform stopped is unreachable at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: TwilioSandbox, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sandbox = sandbox
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return is_loopback(str(client_address[0]))

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """End every connection still open: its handler, waiting for the next request, reads the end."""
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("Twilio sandbox: request from %s failed", client_address, exc_info=True)


class _SandboxHandler(BaseHTTPRequestHandler):
    """Routes Twilio's API paths and the sandbox's own `/_sandbox/` inspection paths."""

    server: _SandboxServer
    server_version = "TwilioSandbox/1"
    protocol_version = "HTTP/1.1"  # the connection stays open after each answer (each has its length)
    # An answer is written in two sends (its head, then its body): with Nagle's algorithm the second
    # waits for the client's delayed ACK of the first, some 40 ms, on a connection kept open.
    disable_nagle_algorithm = True
    timeout = IDLE_CONNECTION_S
    body = b""
    told_close = False

    def parse_request(self) -> bool:
        """Read the request's body whatever its method and path, so that the next request on the
        connection starts where it should; a body over MAX_REQUEST_BYTES is cut, and the connection
        with it."""
        if not super().parse_request():
            return False
        try:
            declared = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return False
        if declared > MAX_REQUEST_BYTES:
            self.close_connection = True
        self.body = self.rfile.read(min(declared, MAX_REQUEST_BYTES)) if declared > 0 else b""
        return True

    def send_response(self, code: int, message: str | None = None) -> None:
        self.told_close = False
        super().send_response(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        self.told_close = self.told_close or (keyword.lower() == "connection" and value.lower() == "close")
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        if self.close_connection and not self.told_close:  # told, rather than found at the next request
            self.send_header("Connection", "close")
        super().end_headers()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        api = ACCOUNT_PATH.match(path)
        call, participant = CALL_PATH.match(path), PARTICIPANT_PATH.match(path)
        room_recording = CONFERENCE_RECORDING_PATH.match(path)
        if api:
            self._api(api["account"], api["resource"])
        elif call:
            self._control(call["account"], "call.update", {"call": call["call"]})
        elif participant:
            ids = {"call": participant["call"], "conference": participant["conference"]}
            self._control(participant["account"], "participant.update", ids)
        elif room_recording:
            ids = {"conference": room_recording["conference"], "recording": room_recording["recording"]}
            self._control(room_recording["account"], "recording.update", ids)
        elif not self._sandbox_post(path):
            self._not_found(path)

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        path = split.path
        listings = {f"{SANDBOX_PREFIX}/messages": "messages", f"{SANDBOX_PREFIX}/calls": "calls"}
        listings[f"{SANDBOX_PREFIX}/recordings"] = "recording_requests"
        listings[f"{SANDBOX_PREFIX}/control"] = "control"
        if self._recording("GET", path):
            return
        conferences = CONFERENCES_PATH.match(path)
        if conferences:
            query = dict(parse_qsl(urlsplit(self.path).query))
            self._control(conferences["account"], "conference.list", {"room": query.get("FriendlyName", "")}, query)
            return
        if path in listings:
            self._send_json(HTTPStatus.OK, getattr(self.server.sandbox, listings[path]))
        else:
            self._not_found(path)

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        if self._recording("DELETE", path):
            return
        if path == SANDBOX_PREFIX:
            self.server.sandbox.clear()
            self._send_json(HTTPStatus.OK, {"cleared": True})
        else:
            self._not_found(path)

    def _recording(self, method: str, path: str) -> bool:
        """A recording's media or its deletion, when `path` names one; False when it does not."""
        sandbox = self.server.sandbox
        found = sandbox.recording_path.match(path)
        if found is None:
            return False
        status = sandbox.handle_recording(
            method, found["account"], found["recording"], self.headers.get("Authorization", "")
        )
        if status == HTTPStatus.OK:
            self._send_bytes(RECORDING_AUDIO, "audio/mpeg")
        elif status == HTTPStatus.NO_CONTENT:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send_json(
                status, {"code": NOT_FOUND, "message": "The requested resource was not found", "status": status}
            )
        return True

    def _send_bytes(self, data: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _api(self, account_sid: str, resource: str) -> None:
        form = dict(parse_qsl(self._body().decode("utf-8", "replace"), keep_blank_values=True))
        try:
            answer = self.server.sandbox.handle_api(account_sid, resource, self.headers.get("Authorization", ""), form)
        except SandboxRefusal as refusal:
            self._send_json(refusal.status, refusal.payload())
        else:
            self._send_json(HTTPStatus.CREATED, answer)

    def _control(self, account: str, action: str, ids: dict[str, str], form: dict[str, str] | None = None) -> None:
        if form is None:
            form = dict(parse_qsl(self._body().decode("utf-8", "replace"), keep_blank_values=True))
        try:
            answer = self.server.sandbox.handle_control(
                account, action, ids, self.headers.get("Authorization", ""), form
            )
        except SandboxRefusal as refusal:
            self._send_json(refusal.status, refusal.payload())
        else:
            self._send_json(HTTPStatus.OK, answer)

    def _sandbox_post(self, path: str) -> bool:
        """The sandbox's own POSTs, when `path` names one: faults to inject, and a simulated call in
        another process taking the move of its call (`moved`)."""
        moves = MOVES_PATH.match(path)
        if moves:
            call = moves["call"]
            self._send_json(HTTPStatus.OK, {"call": call, "url": self.server.sandbox.moved(call)})
        elif path == f"{SANDBOX_PREFIX}/faults":
            self._faults()
        else:
            return False
        return True

    def _faults(self) -> None:
        try:
            spec = json.loads(self._body() or b"{}")
            self.server.sandbox.apply_faults(spec)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            self._send_json(HTTPStatus.BAD_REQUEST, {"message": f"bad fault spec: {error}", "status": 400})
        else:
            self._send_json(HTTPStatus.OK, {"accepted": spec})

    def _not_found(self, path: str) -> None:
        refusal = SandboxRefusal(HTTPStatus.NOT_FOUND, NOT_FOUND, f"The requested resource {path} was not found")
        self._send_json(refusal.status, refusal.payload())

    def _body(self) -> bytes:
        return self.body

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("Twilio sandbox: the client left before its answer (it timed out)")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("Twilio sandbox: " + format, *args)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox as a process until SIGTERM or Ctrl-C; print the base URL first."""
    parser = argparse.ArgumentParser(prog="python -m devtools.twilio_sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID"))
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN"), help="or TWILIO_AUTH_TOKEN")
    args = parser.parse_args(argv)
    if not args.account_sid or not args.auth_token:
        parser.error("--account-sid and --auth-token (or TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN) are required")
    return serve_until_signalled(TwilioSandbox(args.account_sid, args.auth_token, args.host, args.port))


def serve_until_signalled(sandbox: TwilioSandbox) -> int:
    """A sandbox's `python -m` run: its URL printed, served until SIGTERM or Ctrl-C."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    with sandbox:
        print(sandbox.base_url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
