"""The telephony gateway sends through the real twilio client to a local Twilio sandbox: what the
helpline sends is what the sandbox records, and every failure comes back as a GatewayError that
says whether a retry can help."""

from __future__ import annotations

import base64
import http.client
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from devtools.simulator import SandboxMoves
from devtools.twilio_sandbox import MAX_REQUEST_BYTES, TwilioSandbox, num_segments
from telephony import telephony
from telephony.port import GatewayError
from telephony.twilio.rest import TwilioTelephony
from tests.factories import ROOT, make_settings

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "sandbox-auth-token-0123456789abcdef"
MESSAGING_SERVICE_SID = "MG" + "fedcba9876543210" * 2
HELPLINE_NUMBER = "+18005550100"  # twilio.from_number in config.yaml
CITIZEN = "+919876543210"
WORKER = "+919812345678"
PUBLIC_URL = "https://helpline.example.gov.in"
REQUEST_NUMBER_SMS = "Sewamitra: your request number is 482913. Call 1800-555-0100 to track it."
REQUEST_NUMBER_SMS_HI = "सेवामित्र: आपका अनुरोध क्रमांक 482913 दर्ज हो गया है।"
MESSAGE_SID = re.compile(r"^SM[0-9a-f]{32}$")
CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")


@pytest.fixture
def sandbox() -> Iterator[TwilioSandbox]:
    with TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN) as sandbox:
        yield sandbox


def sandbox_settings(tmp_path: Path, sandbox: TwilioSandbox, **environ: str) -> Settings:
    """Settings whose Twilio is the sandbox, with the credentials it expects unless overridden."""
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SEWAMITRA_TWILIO__API_BASE_URL": sandbox.base_url,
        **environ,
    }
    return make_settings(tmp_path, **env)


@pytest.fixture
def gateway(tmp_path: Path, sandbox: TwilioSandbox) -> TwilioTelephony:
    """With production's request timeout: how fast a loaded machine answers is not what these tests
    are about (those about timeouts make a gateway of their own)."""
    return TwilioTelephony(sandbox_settings(tmp_path, sandbox))


def sandbox_http(sandbox: TwilioSandbox, method: str, path: str, data: bytes | None = None, **headers: str) -> Any:
    """Ask the sandbox over HTTP, as another process would; return (status, decoded JSON)."""
    request = urllib.request.Request(sandbox.base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def post_form(sandbox: TwilioSandbox, resource: str, form: dict[str, str], token: str = AUTH_TOKEN) -> Any:
    """POST a form to the sandbox's Twilio API without the twilio client, to see its raw answers."""
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}.json"
    data = urllib.parse.urlencode(form).encode()
    return sandbox_http(sandbox, "POST", path, data, Authorization=basic_auth(ACCOUNT_SID, token))


# -- what gets sent -------------------------------------------------------------------------------


def test_the_request_number_sms_reaches_the_citizen_from_the_helpline_number(
    gateway: TwilioTelephony, sandbox: TwilioSandbox
) -> None:
    callback = f"{PUBLIC_URL}/twilio/sms/status"
    sid = gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS, status_callback=callback)

    [message] = sandbox.messages
    assert MESSAGE_SID.match(sid)
    assert message["sid"] == sid
    assert message["account_sid"] == ACCOUNT_SID
    assert (message["to"], message["from"], message["body"]) == (CITIZEN, HELPLINE_NUMBER, REQUEST_NUMBER_SMS)
    assert message["messaging_service_sid"] is None
    assert message["status_callback"] == callback
    assert message["status"] == "queued"
    assert message["num_segments"] == "1"
    assert message["received_at"]
    assert sandbox.calls == []


def test_a_hindi_sms_arrives_in_devanagari_unchanged_within_two_segments(
    gateway: TwilioTelephony, sandbox: TwilioSandbox
) -> None:
    sid = gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS_HI)

    [message] = sandbox.messages
    assert message["sid"] == sid
    assert message["body"] == REQUEST_NUMBER_SMS_HI
    assert message["params"]["Body"] == REQUEST_NUMBER_SMS_HI
    assert 1 <= int(message["num_segments"]) <= 2
    assert message["status_callback"] is None


def test_with_a_messaging_service_the_sms_goes_out_through_it_not_from_our_number(
    tmp_path: Path, sandbox: TwilioSandbox
) -> None:
    settings = sandbox_settings(tmp_path, sandbox, SEWAMITRA_TWILIO__MESSAGING_SERVICE_SID=MESSAGING_SERVICE_SID)
    sid = telephony(settings).send_sms(WORKER, "New job near 226010: plumber. Reply 1 to accept.")

    [message] = sandbox.messages
    assert message["sid"] == sid
    assert message["messaging_service_sid"] == MESSAGING_SERVICE_SID
    assert message["from"] is None
    assert "From" not in message["params"]
    assert message["status"] == "accepted"  # Twilio's status while the service picks a sender


def test_a_worker_is_called_and_twilio_will_fetch_the_offer_twiml(
    gateway: TwilioTelephony, sandbox: TwilioSandbox
) -> None:
    twiml_url = f"{PUBLIC_URL}/twilio/voice/offer?offer=42"
    callback = f"{PUBLIC_URL}/twilio/voice/status"
    sid = gateway.place_call(WORKER, twiml_url, status_callback=callback, timeout=25)

    [call] = sandbox.calls
    assert CALL_SID.match(sid)
    assert call["sid"] == sid
    assert (call["to"], call["from"]) == (WORKER, HELPLINE_NUMBER)
    assert (call["url"], call["method"], call["twiml"]) == (twiml_url, "POST", None)
    assert call["status_callback"] == callback
    assert call["timeout"] == 25
    assert call["status"] == "queued"
    assert sandbox.messages == []


def test_many_jobs_sending_at_once_each_get_their_own_message(gateway: TwilioTelephony, sandbox: TwilioSandbox) -> None:
    sids: list[str] = []
    failures: list[BaseException] = []

    def send(n: int) -> None:
        try:
            sids.append(gateway.send_sms(CITIZEN, f"message {n}"))
        except Exception as failure:  # kept, so that the test says why, not just how many arrived
            failures.append(failure)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # the event waited for: every send has had its answer

    assert failures == []
    recorded = sandbox.messages  # the sandbox records a message before it answers its sender
    assert sorted(m["sid"] for m in recorded) == sorted(sids)
    assert len(set(sids)) == 16
    assert sorted(m["body"] for m in recorded) == sorted(f"message {n}" for n in range(16))


# -- how it fails ---------------------------------------------------------------------------------


def test_wrong_credentials_fail_for_good(tmp_path: Path, sandbox: TwilioSandbox) -> None:
    settings = sandbox_settings(tmp_path, sandbox, TWILIO_AUTH_TOKEN="not-the-token")

    with pytest.raises(GatewayError) as failure:
        telephony(settings).send_sms(CITIZEN, REQUEST_NUMBER_SMS)

    assert failure.value.retryable is False
    assert (failure.value.status, failure.value.code) == (401, 20003)
    assert sandbox.messages == []


def test_an_invalid_number_fails_for_good_with_twilios_code(gateway: TwilioTelephony, sandbox: TwilioSandbox) -> None:
    with pytest.raises(GatewayError) as failure:
        gateway.send_sms("98765 43210", REQUEST_NUMBER_SMS)

    assert failure.value.retryable is False
    assert (failure.value.status, failure.value.code) == (400, 21211)
    assert sandbox.messages == []


def test_a_twilio_outage_is_retryable_and_the_retry_goes_through(
    gateway: TwilioTelephony, sandbox: TwilioSandbox
) -> None:
    sandbox.fail_next(1, status=500)

    with pytest.raises(GatewayError) as failure:
        gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
    assert failure.value.retryable is True
    assert (failure.value.status, failure.value.code) == (500, 20500)
    assert sandbox.messages == []

    sid = gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
    assert [m["sid"] for m in sandbox.messages] == [sid]


def test_a_503_while_calling_a_worker_is_retryable(gateway: TwilioTelephony, sandbox: TwilioSandbox) -> None:
    sandbox.fail_next(1, status=503)

    with pytest.raises(GatewayError) as failure:
        gateway.place_call(WORKER, f"{PUBLIC_URL}/twilio/voice/offer")

    assert failure.value.retryable is True
    assert failure.value.status == 503
    assert sandbox.calls == []


def test_a_hung_twilio_api_gives_up_after_the_timeout(tmp_path: Path, sandbox: TwilioSandbox) -> None:
    gateway = TwilioTelephony(sandbox_settings(tmp_path, sandbox), timeout=0.5)
    sandbox.delay_next(1, seconds=10)

    started = time.monotonic()
    with pytest.raises(GatewayError) as failure:
        gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
    elapsed = time.monotonic() - started

    assert failure.value.retryable is True
    assert "did not answer within 0.5s" in str(failure.value)
    assert elapsed < 2


def test_an_sms_whose_answer_timed_out_may_still_have_been_sent(tmp_path: Path, sandbox: TwilioSandbox) -> None:
    """So a retry can send twice: callers de-duplicate by their own keys, as with Twilio itself."""
    gateway = TwilioTelephony(sandbox_settings(tmp_path, sandbox), timeout=0.3)
    sandbox.delay_next(1, seconds=0.6)

    with pytest.raises(GatewayError) as failure:
        gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)

    assert failure.value.retryable is True
    [message] = sandbox.wait_for_messages(1, timeout=5)
    assert message["body"] == REQUEST_NUMBER_SMS


def test_an_unreachable_twilio_is_retryable(tmp_path: Path, sandbox: TwilioSandbox) -> None:
    gateway = TwilioTelephony(sandbox_settings(tmp_path, sandbox), timeout=2)
    sandbox.stop()

    with pytest.raises(GatewayError) as failure:
        gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)

    assert failure.value.retryable is True
    assert "unreachable" in str(failure.value)


def test_missing_credentials_name_the_environment_variables_to_set(tmp_path: Path) -> None:
    gateway = telephony(make_settings(tmp_path))

    with pytest.raises(GatewayError) as failure:
        gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)

    assert failure.value.retryable is False
    assert "TWILIO_ACCOUNT_SID" in str(failure.value)
    assert "TWILIO_AUTH_TOKEN" in str(failure.value)


def test_a_missing_token_alone_is_named_alone(tmp_path: Path) -> None:
    gateway = telephony(make_settings(tmp_path, TWILIO_ACCOUNT_SID=ACCOUNT_SID))

    with pytest.raises(GatewayError, match="set TWILIO_AUTH_TOKEN in the environment") as failure:
        gateway.place_call(WORKER, f"{PUBLIC_URL}/twilio/voice/offer")

    assert "TWILIO_ACCOUNT_SID" not in str(failure.value)


def test_without_a_sender_no_sms_is_attempted(tmp_path: Path, sandbox: TwilioSandbox) -> None:
    gateway = telephony(sandbox_settings(tmp_path, sandbox, SEWAMITRA_TWILIO__FROM_NUMBER=""))

    with pytest.raises(GatewayError, match=r"messaging_service_sid or twilio\.from_number") as failure:
        gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
    assert failure.value.retryable is False
    with pytest.raises(GatewayError, match=r"twilio\.from_number"):
        gateway.place_call(WORKER, f"{PUBLIC_URL}/twilio/voice/offer")
    assert sandbox.messages == sandbox.calls == []


# -- the sandbox as other processes see it --------------------------------------------------------


def test_other_processes_read_and_clear_what_was_sent_over_http(
    gateway: TwilioTelephony, sandbox: TwilioSandbox
) -> None:
    sms_sid = gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS_HI)
    call_sid = gateway.place_call(WORKER, f"{PUBLIC_URL}/twilio/voice/offer")

    status, messages = sandbox_http(sandbox, "GET", "/_sandbox/messages")
    assert status == 200
    assert [(m["sid"], m["body"]) for m in messages] == [(sms_sid, REQUEST_NUMBER_SMS_HI)]
    status, calls = sandbox_http(sandbox, "GET", "/_sandbox/calls")
    assert [c["sid"] for c in calls] == [call_sid]

    status, _ = sandbox_http(sandbox, "DELETE", "/_sandbox")
    assert status == 200
    assert sandbox_http(sandbox, "GET", "/_sandbox/messages") == (200, [])
    assert sandbox.calls == []


def test_faults_can_be_injected_from_another_process(gateway: TwilioTelephony, sandbox: TwilioSandbox) -> None:
    status, _ = sandbox_http(sandbox, "POST", "/_sandbox/faults", json.dumps({"fail_next": 1, "status": 503}).encode())
    assert status == 200

    with pytest.raises(GatewayError) as failure:
        gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
    assert (failure.value.retryable, failure.value.status) == (True, 503)
    gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
    assert len(sandbox.messages) == 1

    assert sandbox_http(sandbox, "POST", "/_sandbox/faults", b"not json")[0] == 400


def test_a_simulated_call_in_another_process_takes_the_move_of_its_own_call_once_over_http(
    gateway: TwilioTelephony, sandbox: TwilioSandbox
) -> None:
    mine, nobodys = "CA" + "1" * 32, "CA" + "2" * 32
    gateway.redirect_call(mine, f"{PUBLIC_URL}/twilio/voice/queue/connect")
    gateway.redirect_call(nobodys, f"{PUBLIC_URL}/twilio/voice/menu")
    moves = SandboxMoves(sandbox.base_url)

    assert moves.waiting(mine)
    assert moves.waiting(mine)  # kept until the call follows it
    assert moves(mine) == f"{PUBLIC_URL}/twilio/voice/queue/connect"
    assert moves(mine) is None  # taken once
    assert sandbox_http(sandbox, "POST", f"/_sandbox/moves/{mine}") == (200, {"call": mine, "url": None})
    # The move of a call nobody simulates is left alone, followed by nobody.
    assert sandbox.moved(nobodys) == f"{PUBLIC_URL}/twilio/voice/menu"
    sandbox.stop()
    stopped = SandboxMoves(sandbox.base_url, timeout=2)
    assert stopped(mine) is None  # a sandbox that does not answer moved nothing
    assert not stopped.waiting(mine)


def test_an_outage_of_the_sms_api_refuses_every_send_for_its_window_then_ends(
    gateway: TwilioTelephony, sandbox: TwilioSandbox
) -> None:
    status, _ = sandbox_http(sandbox, "POST", "/_sandbox/faults", json.dumps({"fail_for": 60, "status": 500}).encode())
    assert status == 200
    assert sandbox.failing

    for _ in range(3):  # not a count of requests: every one in the window
        with pytest.raises(GatewayError) as failure:
            gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
        assert (failure.value.retryable, failure.value.status) == (True, 500)
    assert (sandbox.messages, sandbox.refused) == ([], 3)

    sandbox.fail_for(0)  # the outage is over
    assert not sandbox.failing
    gateway.send_sms(CITIZEN, REQUEST_NUMBER_SMS)
    assert len(sandbox.messages) == 1
    with pytest.raises(ValueError, match="error status"):
        sandbox.fail_for(10, status=200)


def test_the_sandbox_refuses_what_twilio_refuses_with_twilios_error_json(sandbox: TwilioSandbox) -> None:
    status, error = post_form(sandbox, "Messages", {"To": CITIZEN, "From": HELPLINE_NUMBER}, token="wrong")
    assert status == 401
    assert error == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert post_form(sandbox, "Messages", {"From": HELPLINE_NUMBER, "Body": "hi"})[1]["code"] == 21604
    assert post_form(sandbox, "Messages", {"To": CITIZEN, "From": HELPLINE_NUMBER})[1]["code"] == 21602
    assert post_form(sandbox, "Messages", {"To": CITIZEN, "Body": "hi"})[1]["code"] == 21603
    assert post_form(sandbox, "Calls", {"To": "0522 2000000", "From": HELPLINE_NUMBER, "Url": PUBLIC_URL})[0] == 400
    assert post_form(sandbox, "Calls", {"To": CITIZEN, "From": HELPLINE_NUMBER})[1]["code"] == 21205
    assert sandbox.messages == sandbox.calls == []


def test_the_sandbox_answers_a_message_as_twilio_does(sandbox: TwilioSandbox) -> None:
    status, message = post_form(sandbox, "Messages", {"To": CITIZEN, "From": HELPLINE_NUMBER, "Body": "hi"})

    assert status == 201
    assert message["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message['sid']}.json"
    assert message["direction"] == "outbound-api"
    assert message["date_created"].endswith("+0000")


API_HEADERS = {
    "Authorization": basic_auth(ACCOUNT_SID, AUTH_TOKEN),
    "Content-Type": "application/x-www-form-urlencoded",
}


def _api_post(connection: http.client.HTTPConnection, resource: str, form: dict[str, str]) -> tuple[int, Any]:
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}.json"
    connection.request("POST", path, urllib.parse.urlencode(form), API_HEADERS)
    answer = connection.getresponse()
    return answer.status, json.loads(answer.read())


def test_the_sandbox_keeps_a_clients_connection_open_between_requests_as_twilios_api_does(
    sandbox: TwilioSandbox,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    try:
        assert _api_post(connection, "Messages", {"To": CITIZEN, "From": HELPLINE_NUMBER, "Body": "one"})[0] == 201
        first = connection.sock
        # A request whose method carries no form still has its body read, so the next one starts clean.
        connection.request("DELETE", "/_sandbox/nothing-here", body=b'{"x": 1}')
        refused = connection.getresponse()
        assert (refused.status, json.loads(refused.read())["status"]) == (404, 404)
        assert _api_post(connection, "Messages", {"To": WORKER, "From": HELPLINE_NUMBER, "Body": "two"})[0] == 201

        assert first is not None
        assert connection.sock is first
        assert [(m["to"], m["body"]) for m in sandbox.messages] == [(CITIZEN, "one"), (WORKER, "two")]
    finally:
        connection.close()


def test_a_stopped_sandbox_ends_the_connections_it_kept_open(sandbox: TwilioSandbox) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    try:
        assert _api_post(connection, "Messages", {"To": CITIZEN, "From": HELPLINE_NUMBER, "Body": "hi"})[0] == 201
        assert connection.sock is not None

        sandbox.stop()

        assert connection.sock.recv(1) == b""  # the end of the connection: no request of a stopped platform is answered
    finally:
        connection.close()


def test_a_body_over_the_limit_is_cut_and_its_connection_closed(sandbox: TwilioSandbox) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    try:
        body = b"Body=" + b"x" * MAX_REQUEST_BYTES
        connection.request("POST", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", body, API_HEADERS)
        answer = connection.getresponse()
        answer.read()

        assert answer.status == 400
        assert answer.will_close
    finally:
        connection.close()


def test_the_sandbox_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, host="0.0.0.0")


def test_waiting_for_a_message_sent_in_the_background(gateway: TwilioTelephony, sandbox: TwilioSandbox) -> None:
    later = threading.Timer(0.2, gateway.send_sms, args=(CITIZEN, REQUEST_NUMBER_SMS))
    later.start()

    [message] = sandbox.wait_for_messages(1, timeout=5)
    later.join()
    assert message["to"] == CITIZEN
    with pytest.raises(TimeoutError, match="2 messages"):
        sandbox.wait_for_messages(2, timeout=0.2)


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("{" * 80, 1),  # extension characters cost two septets
        ("{" * 81, 2),
        ("क" * 70, 1),  # Devanagari: UCS-2, 70 in one segment, 67 per part
        ("क" * 71, 2),
        ("क" * 134, 2),
        ("क" * 135, 3),
    ],
)
def test_sms_segments_are_counted_as_twilio_bills_them(body: str, segments: int) -> None:
    assert num_segments(body) == segments


def test_the_sandbox_runs_as_a_process_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "devtools.twilio_sandbox", "--port", "0", "--account-sid", ACCOUNT_SID]
    process = subprocess.Popen([*command, "--auth-token", AUTH_TOKEN], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        settings = make_settings(
            tmp_path,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            SEWAMITRA_TWILIO__API_BASE_URL=base_url,
        )
        sid = telephony(settings).send_sms(CITIZEN, REQUEST_NUMBER_SMS_HI)
        with urllib.request.urlopen(f"{base_url}/_sandbox/messages", timeout=5) as answer:
            assert [m["sid"] for m in json.loads(answer.read())] == [sid]
        process.terminate()
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
