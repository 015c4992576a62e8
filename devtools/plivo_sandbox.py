"""A local stand-in for Plivo's REST API: records the SMS and calls the helpline asks Plivo for, so
tests and the one-box demo run on `telephony.platform: plivo` without a Plivo account.

It answers the two requests the gateway makes, as Plivo documents them:

- Send a message, `POST /v1/Account/{auth_id}/Message/` (plivo.com/docs/messaging/api/message/send-a-message):
  `src` (for India, the DLT header registered for the template), `dst` (country code and number,
  digits only), `text`, `url` (the status callback), `dlt_entity_id`, `dlt_template_id`,
  `dlt_template_category`; answered 202 with `message_uuid`.
- Make a call, `POST /v1/Account/{auth_id}/Call/` (plivo.com/docs/voice/api/call/make-a-call):
  `from`, `to`, `answer_url`, `answer_method`, `hangup_url`, `ring_timeout`; answered 201 with
  `request_uuid`.

- Create a JWT access token for the Browser SDK, `POST /v1/Account/{auth_id}/JWT/Token/`
  (plivo.com/docs/voice/sdk/browser/jwt-authentication): `iss` (the auth id), `sub`, `nbf`, `exp`
  (at most 24 hours after `nbf`), `per` (`{"voice": {"incoming_allow", "outgoing_allow"}}`), `app`;
  answered 200 with `token`. Plivo signs its tokens with a key of its own; the sandbox signs them
  HS256 with the auth token, so that tests can verify what it was asked for.

Live calls and conference rooms, for the console (`telephony.port.CallControl`), each request
recorded (`control`) with `action`, `call`, `room`, `member` and `params`:

- Transfer a call, `POST /v1/Account/{auth_id}/Call/{uuid}/` with `legs` (aleg) and `aleg_url`
  (plivo.com/docs/voice/api/call/transfer-a-call): answered 202; the move waits in `moved(call)`
  for the simulated call to take it, or for a simulated call in another process to take it by
  `POST /_sandbox/moves/{uuid}`, as on the Twilio sandbox.
- A conference member muted, made deaf, or played audio (`url`), `POST` (undone by `DELETE`)
  `/v1/Account/{auth_id}/Conference/{name}/Member/{member_id}/Mute/`, `/Deaf/`, `/Play/`
  (plivo.com/docs/voice/api/conference/member/…): answered 202 (`DELETE`: 204); a room a test
  ended (`end_room`) is not found, 404.

Recordings a simulated caller made at a <Record> (plivo.com/docs/voice/xml/record: the action gets
RecordUrl, RecordingID, RecordingDuration…) are served at their RecordUrl,
`GET /v1/Account/{auth_id}/Recording/{id}.mp3`, and deleted by the SDK's `recordings.delete`,
`DELETE /v1/Account/{auth_id}/Recording/{id}/` (plivo.com/docs/voice/api/recording/delete-a-recording:
204); each fetch and delete is recorded, as on the Twilio sandbox.

An agent's call recorded in a conference room is paused and resumed by stopping and starting the
room's recording (plivo.com/docs/voice/api/conference/record-conference), as the live-call control
above: `POST /v1/Account/{auth_id}/Conference/{name}/Record/` (`file_format`, `callback_url`,
`callback_method`) answered 202 with the recording's `url` (`action` "room.record"), and `DELETE`
on the same path answered 204 ("room.record.stop").

Errors have Plivo's shape, `{"api_id": …, "error": …}`, with the HTTP statuses Plivo documents
(plivo.com/docs/messaging/api/response: 400 a parameter missing or invalid, 401 authentication
failed, 404, 429 rate limited, 500). Records are read over HTTP under `/_sandbox/`, as the Twilio
sandbox's are, with the same keys (`to`, `from`, `body`, `sid`, `status_callback`, `url`) beside
Plivo's own parameters (`params`). It listens on loopback only.

    python -m devtools.plivo_sandbox --port 8099 --auth-id MA... --auth-token ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import jwt

from devtools.twilio_sandbox import (
    MAX_BODY_CHARS,
    SandboxRefusal,
    TwilioSandbox,
    _SandboxHandler,
    num_segments,
    serve_until_signalled,
)

log = logging.getLogger(__name__)

ACCOUNT_PATH = re.compile(r"^/v1/Account/(?P<account>[^/]+)/(?P<resource>Message|Call|JWT/Token)/$")
NUMBER = re.compile(r"^[1-9]\d{6,13}$")  # Plivo's sanitized numbers: country code first, at most 14 digits
SENDER_ID = re.compile(r"^[A-Za-z0-9]{1,11}$")
DEFAULT_RING_TIMEOUT = 120  # seconds: Plivo's default ring_timeout
CREATED = {"Message": HTTPStatus.ACCEPTED, "Call": HTTPStatus.CREATED, "JWT/Token": HTTPStatus.OK}
MAX_TOKEN_S = 24 * 3600  # the longest validity Plivo allows a JWT
ROOM_RECORD_PATH = re.compile(r"^/v1/Account/(?P<account>[^/]+)/Conference/(?P<room>[^/]{1,100})/Record/$")
CALL_PATH = re.compile(r"^/v1/Account/(?P<account>[^/]+)/Call/(?P<call>[0-9a-f-]{36})/$")
MEMBER_PATH = re.compile(
    r"^/v1/Account/(?P<account>[^/]+)/Conference/(?P<room>[^/]{1,100})/Member/(?P<member>[0-9]{1,11})/(?P<what>Mute|Deaf|Play)/$"
)
RECORDING_PATH = re.compile(r"^/v1/Account/(?P<account>[^/]+)/Recording/(?P<recording>[0-9a-f-]{36})(?:/|\.mp3|\.wav)$")


class PlivoRefusal(SandboxRefusal):
    """A request Plivo would refuse, answered in Plivo's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, status, message)

    def payload(self) -> dict[str, Any]:
        return {"api_id": str(uuid.uuid4()), "error": self.message}


def _required(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    if not value or not isinstance(value, str):
        raise PlivoRefusal(HTTPStatus.BAD_REQUEST, f"{name} is a required parameter")
    return value


def _sanitized(number: str, name: str) -> str:
    """Plivo strips '/', '-', '.', '+', '(', ')' and spaces, then wants the country code first."""
    digits = re.sub(r"[/\-.+() ]", "", number)
    if not NUMBER.match(digits):
        raise PlivoRefusal(HTTPStatus.BAD_REQUEST, f"invalid {name} number: {number}")
    return digits


def _message(form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plivo's answer to a message request, and what the sandbox records of it."""
    src = _required(form, "src")
    dst = _sanitized(_required(form, "dst"), "dst")
    text = _required(form, "text")
    if not (SENDER_ID.match(src) or NUMBER.match(src.lstrip("+"))):
        raise PlivoRefusal(HTTPStatus.BAD_REQUEST, f"invalid src: {src}")
    if len(text) > MAX_BODY_CHARS:
        raise PlivoRefusal(HTTPStatus.BAD_REQUEST, f"text is longer than {MAX_BODY_CHARS} characters")
    message_uuid = str(uuid.uuid4())
    answer = {"api_id": str(uuid.uuid4()), "message": "message(s) queued", "message_uuid": [message_uuid]}
    record = {
        "sid": message_uuid,
        "to": f"+{dst}",
        "from": src,
        "body": text,
        "num_segments": str(num_segments(text)),
        "status": "queued",
        "status_callback": form.get("url"),
        "dlt_entity_id": form.get("dlt_entity_id"),
        "dlt_template_id": form.get("dlt_template_id"),
        "dlt_template_category": form.get("dlt_template_category"),
    }
    return answer, record


def _call(form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plivo's answer to a call request, and what the sandbox records of it."""
    caller = _sanitized(_required(form, "from"), "from")
    callee = _sanitized(_required(form, "to"), "to")
    answer_url = _required(form, "answer_url")
    timeout = form.get("ring_timeout", DEFAULT_RING_TIMEOUT)
    if not isinstance(timeout, int) or timeout < 0:
        raise PlivoRefusal(HTTPStatus.BAD_REQUEST, "ring_timeout must be a whole number of seconds")
    request_uuid = str(uuid.uuid4())
    answer = {"api_id": str(uuid.uuid4()), "message": "call fired", "request_uuid": request_uuid}
    record = {
        "sid": request_uuid,
        "to": f"+{callee}",
        "from": f"+{caller}",
        "url": answer_url,
        "method": form.get("answer_method", "POST"),
        "status_callback": form.get("hangup_url"),
        "timeout": timeout,
        "status": "queued",
    }
    return answer, record


BUILDERS = {"Message": _message, "Call": _call}
RECORDS = {"Message": "Messages", "Call": "Calls"}


class PlivoSandbox(TwilioSandbox):
    """Plivo's Message and Call API on a loopback port, recording every accepted request."""

    name = "Plivo"
    recording_path = RECORDING_PATH

    def __init__(self, auth_id: str, auth_token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(auth_id, auth_token, host, port)
        self._records["Tokens"] = []

    @property
    def tokens(self) -> list[dict[str, Any]]:
        """Every JWT the sandbox made: its claims and the parameters it was asked with."""
        with self._changed:
            return list(self._records["Tokens"])

    @property
    def auth_id(self) -> str:
        return self.account_sid

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _PlivoHandler

    def handle_api(self, account_sid: str, resource: str, authorization: str, form: dict[str, Any]) -> dict[str, Any]:
        """Answer one API request as Plivo would; raise PlivoRefusal where Plivo would refuse."""
        fault = self._next_fault()
        if fault and fault.delay and self._stopping.wait(fault.delay):
            raise PlivoRefusal(HTTPStatus.SERVICE_UNAVAILABLE, "the sandbox is stopping")
        if fault and fault.status:
            raise PlivoRefusal(fault.status, f"injected failure ({fault.status})")
        if not self._authenticated(authorization):
            raise PlivoRefusal(HTTPStatus.UNAUTHORIZED, "authentication failed")
        if account_sid != self.account_sid:
            raise PlivoRefusal(HTTPStatus.NOT_FOUND, "not found")
        if resource == "JWT/Token":
            return self._token(form)
        answer, record = BUILDERS[resource](form)
        self._record(RECORDS[resource], {**record, "params": form, "received_at": datetime.now(UTC).isoformat()})
        return answer

    def _token(self, form: dict[str, Any]) -> dict[str, Any]:
        """A JWT for the Browser SDK, refused as Plivo refuses one (400) without its claims."""
        if form.get("iss") != self.auth_id:
            raise PlivoRefusal(HTTPStatus.BAD_REQUEST, "iss must be your auth_id")
        try:
            nbf, exp = int(form.get("nbf") or time.time()), int(form.get("exp") or time.time() + 86400)
        except ValueError as error:
            raise PlivoRefusal(HTTPStatus.BAD_REQUEST, "nbf and exp are Unix seconds") from error
        if not 0 < exp - nbf <= MAX_TOKEN_S:
            raise PlivoRefusal(HTTPStatus.BAD_REQUEST, "a token is valid for at most 24 hours")
        claims = {"iss": self.auth_id, "sub": form.get("sub", ""), "nbf": nbf, "exp": exp, "per": form.get("per", {})}
        if form.get("app"):
            claims["app"] = form["app"]
        self._record("Tokens", {**claims, "params": form, "received_at": datetime.now(UTC).isoformat()})
        headers = {"typ": "JWT", "cty": "plivo;v=1"}
        return {"api_id": str(uuid.uuid4()), "token": jwt.encode(claims, self.auth_token, "HS256", headers)}

    def handle_control(
        self, account_sid: str, action: str, ids: dict[str, str], authorization: str, form: dict[str, Any]
    ) -> dict[str, Any]:
        """A transfer, a member's change or a room's recording started or stopped, as Plivo answers
        it; recorded."""
        fault = self._next_fault()
        if fault and fault.status:
            with self._changed:
                self.refused += 1
            raise PlivoRefusal(fault.status, f"injected failure ({fault.status})")
        if not self._authenticated(authorization):
            raise PlivoRefusal(HTTPStatus.UNAUTHORIZED, "authentication failed")
        if account_sid != self.account_sid:
            raise PlivoRefusal(HTTPStatus.NOT_FOUND, "not found")
        if action == "call.transfer":
            if form.get("legs", "aleg") != "aleg" or not form.get("aleg_url"):
                raise PlivoRefusal(HTTPStatus.BAD_REQUEST, "aleg_url is required to transfer the aleg")
            with self._changed:
                self._moves[ids["call"]] = str(form["aleg_url"])
        if ids.get("room") and not self.in_progress(ids["room"]):
            raise PlivoRefusal(HTTPStatus.NOT_FOUND, "conference not found")
        if action == "member.play" and not form.get("url"):
            raise PlivoRefusal(HTTPStatus.BAD_REQUEST, "url is a required parameter")
        record = {"action": action, "call": ids.get("call"), "room": ids.get("room"), "member": ids.get("member")}
        self._record("Control", {**record, "params": form})
        if action == "room.record":
            recording_id = str(uuid.uuid4())
            url = f"{self.base_url}/v1/Account/{account_sid}/Recording/{recording_id}.mp3"
            return {"api_id": str(uuid.uuid4()), "message": "conference recording started", "url": url}
        return {"api_id": str(uuid.uuid4()), "message": f"{action} done", "member_id": [ids.get("member")]}


class _PlivoHandler(_SandboxHandler):
    server_version = "PlivoSandbox/1"

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        api = ACCOUNT_PATH.match(path)
        if self._live("POST", path):
            return
        if api:
            self._plivo(api["account"], api["resource"])
        elif not self._sandbox_post(path):
            self._send_json(HTTPStatus.NOT_FOUND, PlivoRefusal(HTTPStatus.NOT_FOUND, "not found").payload())

    def do_DELETE(self) -> None:
        if not self._live("DELETE", urlsplit(self.path).path):
            super().do_DELETE()

    def _live(self, method: str, path: str) -> bool:
        """A transfer, a member's change or a room's recording, when `path` names one."""
        call, member, room = CALL_PATH.match(path), MEMBER_PATH.match(path), ROOM_RECORD_PATH.match(path)
        if call and method == "POST":
            account, action, ids = call["account"], "call.transfer", {"call": call["call"]}
        elif room:
            account, ids = room["account"], {"room": room["room"]}
            action = "room.record" + ("" if method == "POST" else ".stop")
        elif member:
            account, ids = member["account"], {"room": member["room"], "member": member["member"]}
            action = f"member.{member['what'].lower()}" + ("" if method == "POST" else ".stop")
        else:
            return False
        try:
            body = json.loads(self._body() or b"{}")
            form = body if isinstance(body, dict) else {}
            sandbox = self.server.sandbox
            answer = sandbox.handle_control(account, action, ids, self.headers.get("Authorization", ""), form)
        except SandboxRefusal as refusal:
            self._send_json(refusal.status, refusal.payload())
        except ValueError:
            self._send_json(HTTPStatus.BAD_REQUEST, PlivoRefusal(HTTPStatus.BAD_REQUEST, "invalid JSON").payload())
        else:
            if method == "DELETE":
                self.send_response(HTTPStatus.NO_CONTENT)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send_json(HTTPStatus.ACCEPTED, answer)
        return True

    def _plivo(self, account: str, resource: str) -> None:
        """The SDK posts JSON bodies."""
        try:
            form = json.loads(self._body() or b"{}")
            if not isinstance(form, dict):
                raise ValueError("not an object")
            answer = self.server.sandbox.handle_api(account, resource, self.headers.get("Authorization", ""), form)
        except ValueError:
            self._send_json(HTTPStatus.BAD_REQUEST, PlivoRefusal(HTTPStatus.BAD_REQUEST, "invalid JSON").payload())
        except SandboxRefusal as refusal:
            self._send_json(refusal.status, refusal.payload())
        else:
            self._send_json(CREATED[resource], answer)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox as a process until SIGTERM or Ctrl-C; print the base URL first."""
    parser = argparse.ArgumentParser(prog="python -m devtools.plivo_sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--auth-id", default=os.environ.get("PLIVO_AUTH_ID"), help="or PLIVO_AUTH_ID")
    parser.add_argument("--auth-token", default=os.environ.get("PLIVO_AUTH_TOKEN"), help="or PLIVO_AUTH_TOKEN")
    args = parser.parse_args(argv)
    if not args.auth_id or not args.auth_token:
        parser.error("--auth-id and --auth-token (or PLIVO_AUTH_ID / PLIVO_AUTH_TOKEN) are required")
    return serve_until_signalled(PlivoSandbox(args.auth_id, args.auth_token, args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
