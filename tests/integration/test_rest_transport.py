"""The platforms' SDKs send over `telephony.http` rather than `requests`: each request leaves as the
SDK's own `requests` client sends it (method, path, query, body, credentials), over real sockets to
a local server that records what arrives; a request is sent once, never again on a dropped answer;
and a proxy from the environment is used as `requests` uses it, never for a configured API."""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import plivo
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from devtools.bench.sending import sdk_plivo, sdk_twilio
from telephony.http import TimedOut, Transport, Unreachable
from telephony.plivo.rest import plivo_client
from telephony.twilio.http import LeanHttpClient
from telephony.twilio.rest import twilio_client

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "transport-test-token"
AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
MESSAGE = {"sid": "SM" + "0" * 32, "status": "queued"}


@dataclass
class Seen:
    """A request as it arrived: its method, the target of its request line, its headers, its body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)

    @property
    def path_and_query(self) -> tuple[str, dict[str, list[str]]]:
        parts = urllib.parse.urlsplit(self.target)
        return parts.path, urllib.parse.parse_qs(parts.query)


@dataclass
class Recorder:
    """A local HTTP server that records each request and answers it with `answer` (status, JSON)."""

    answer: Callable[[Seen], tuple[int, Any]] = lambda _seen: (201, MESSAGE)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept open, as the platforms' APIs keep them

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                recorder.seen.append(seen)
                status, payload = recorder.answer(seen)
                body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


def _same_request(ours: Seen, theirs: Seen) -> None:
    assert ours.method == theirs.method
    assert ours.path_and_query == theirs.path_and_query
    assert ours.headers["authorization"] == theirs.headers["authorization"]
    assert ours.headers.get("content-type") == theirs.headers.get("content-type")
    assert ours.headers["user-agent"] == theirs.headers["user-agent"]
    assert ours.headers["accept"] == theirs.headers["accept"]


def test_an_sms_on_twilio_leaves_as_the_sdks_requests_client_sends_it(recorder: Recorder) -> None:
    def send(client: Client) -> str:
        message = client.messages.create(
            to="+919876543210",
            from_="+18005550100",
            body="नमस्ते & 100% = ok?",
            status_callback="https://h.example/s?x=1",
        )
        return str(message.sid)

    assert send(twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_base_url=recorder.url, timeout=5)) == MESSAGE["sid"]
    assert send(sdk_twilio(ACCOUNT_SID, AUTH_TOKEN, recorder.url)) == MESSAGE["sid"]

    ours, theirs = recorder.seen
    _same_request(ours, theirs)
    assert (
        ours.form
        == theirs.form
        == {
            "To": ["+919876543210"],
            "From": ["+18005550100"],
            "Body": ["नमस्ते & 100% = ok?"],
            "StatusCallback": ["https://h.example/s?x=1"],
        }
    )
    assert ours.headers["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


def test_a_list_on_twilio_sends_its_filters_in_the_query_as_the_sdk_does(recorder: Recorder) -> None:
    recorder.answer = lambda _seen: (200, {"conferences": [], "meta": {"key": "conferences", "next_page_url": None}})

    for client in (
        twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_base_url=recorder.url, timeout=5),
        sdk_twilio(ACCOUNT_SID, AUTH_TOKEN, recorder.url),
    ):
        assert client.conferences.list(friendly_name="room 7/ok", status="in-progress", limit=1) == []

    ours, theirs = recorder.seen
    _same_request(ours, theirs)
    assert ours.path_and_query[1] == {"FriendlyName": ["room 7/ok"], "Status": ["in-progress"], "PageSize": ["1"]}
    assert ours.body == theirs.body == b""


def test_twilios_refusal_reaches_the_sdk_with_its_status_and_code(recorder: Recorder) -> None:
    recorder.answer = lambda _seen: (400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
    client = twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_base_url=recorder.url, timeout=5)

    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+91", from_="+18005550100", body="x")
    assert (refused.value.status, refused.value.code) == (400, 21211)


def test_an_sms_on_plivo_leaves_as_the_sdks_requests_client_sends_it(recorder: Recorder) -> None:
    recorder.answer = lambda _seen: (202, {"message_uuid": ["b5a5c8c2-0f3e-11ef-9a5f-0242ac110002"], "api_id": "x"})

    def send(client: plivo.RestClient) -> Any:
        return client.messages.create(
            src="SEWMTR", dst="919876543210", text="नमस्ते & 100%", url="https://h.example/s", method="POST"
        )

    answer = send(plivo_client(AUTH_ID, AUTH_TOKEN, api_base_url=recorder.url, timeout=5))
    theirs_answer = send(sdk_plivo(AUTH_ID, AUTH_TOKEN, recorder.url))  # the SDK's own, on `requests`

    assert answer.message_uuid == theirs_answer.message_uuid == ["b5a5c8c2-0f3e-11ef-9a5f-0242ac110002"]
    ours, theirs = recorder.seen
    _same_request(ours, theirs)
    assert ours.path_and_query[0] == f"/v1/Account/{AUTH_ID}/Message/"
    assert json.loads(ours.body) == json.loads(theirs.body)
    assert json.loads(ours.body)["text"] == "नमस्ते & 100%"


def test_plivos_refusal_reaches_the_sdk_as_its_own_error(recorder: Recorder) -> None:
    recorder.answer = lambda _seen: (401, {"error": "authentication failed", "api_id": "x"})
    client = plivo_client(AUTH_ID, AUTH_TOKEN, api_base_url=recorder.url, timeout=5)

    with pytest.raises(plivo.exceptions.AuthenticationError, match="authentication failed"):
        client.messages.create(src="SEWMTR", dst="919876543210", text="x")


def test_a_request_whose_answer_never_comes_is_not_sent_again() -> None:
    """A POST that may have been acted on (an SMS sent) must not be sent twice by the transport: the
    server reads the request, then drops the connection without a word."""
    arrived = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            arrived.append(connection.recv(65536))
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    transport = Transport(timeout=5, direct=True)
    try:
        with pytest.raises(Unreachable):
            transport.request("POST", f"http://127.0.0.1:{listener.getsockname()[1]}/x", headers={}, body=b"a=1")
    finally:
        listener.close()
    assert len(arrived) == 1


def test_an_api_that_takes_no_connection_is_unreachable_and_one_that_does_not_answer_timed_out() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(Unreachable) as refused:
        Transport(timeout=5, direct=True).request("GET", f"http://127.0.0.1:{port}/", headers={})
    assert not isinstance(refused.value, TimedOut)

    silent = socket.create_server(("127.0.0.1", 0))  # takes connections, never answers
    try:
        with pytest.raises(TimedOut):
            Transport(timeout=0.2, direct=True).request(
                "GET", f"http://127.0.0.1:{silent.getsockname()[1]}/", headers={}
            )
    finally:
        silent.close()


def test_a_proxy_from_the_environment_carries_the_platforms_requests_unless_the_api_is_configured(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Recorder() as api:
        monkeypatch.setenv("HTTP_PROXY", recorder.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        Transport(timeout=5, direct=False).request("GET", f"{api.url}/through", headers={})
        Transport(timeout=5, direct=True).request("GET", f"{api.url}/direct", headers={})
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        Transport(timeout=5, direct=False).request("GET", f"{api.url}/bypassed", headers={})

    [proxied] = recorder.seen
    assert proxied.target == f"{api.url}/through"  # a proxy is asked for the whole URL
    assert [seen.target for seen in api.seen] == ["/direct", "/bypassed"]


def test_a_twilio_client_at_a_configured_api_ignores_the_environments_proxy(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    client = twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_base_url=recorder.url, timeout=5)
    assert isinstance(client.http_client, LeanHttpClient)

    client.messages.create(to="+919876543210", from_="+18005550100", body="x")

    assert len(recorder.seen) == 1
