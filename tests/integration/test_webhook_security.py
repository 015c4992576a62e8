"""Only Twilio may drive the helpline, and Twilio's retries change nothing twice. Every webhook
refuses (403) a post that is unsigned, signed with another token, signed for another URL or
tampered with, and records nothing: no call log, message, request, callback or audit event, and
not a key in Redis. The same signed voice step, the same SMS and the same status callback posted
twice do their work once."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, func, select

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context
from dispatch.queues import worker as rq_worker
from storage.models import AuditEvent, CallbackRequest, CallLog, ServiceRequest, SmsLog
from telephony.twilio.rest import TwilioTelephony
from telephony.twilio.signature import SIGNATURE_HEADER
from tests.factories import ALWAYS_OPEN, PUBLIC_URL, with_hours, write_call_logs
from tests.hostile import post_raw, signature

CITIZEN = "+919876543210"
EVERYTHING = {  # every field any webhook reads, with values that would make each one act
    "CallSid": "CA" + "5" * 32,
    "AccountSid": "AC" + "0" * 32,
    "From": CITIZEN,
    "To": "+18005550100",
    "Caller": CITIZEN,
    "CallStatus": "no-answer",
    "Direction": "inbound",
    "Digits": "1",
    "QueueResult": "leave",
    "QueueTime": "30",
    "QueuePosition": "1",
    "DialCallStatus": "completed",
    "MessageSid": "SM" + "5" * 32,
    "Body": "YES",
    "MessageStatus": "undelivered",
    "ErrorCode": "30003",
    "CallDuration": "10",
}
QUERY = "turn=0&user=1&offer=1&feedback=1&flow=feedback&request=1"
TABLES = (CallLog, SmsLog, ServiceRequest, CallbackRequest, AuditEvent)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def webhooks(app: Flask) -> list[str]:
    """Every route Twilio posts to: found from the app, so a new webhook is covered by itself."""
    found = sorted(
        {
            rule.rule
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/twilio") and "POST" in (rule.methods or ())
        }
    )
    assert len(found) >= 13, found
    return found


def recorded(app: Flask) -> dict[str, int]:
    write_call_logs(app)  # a status callback's log waits in Redis for the writer
    with Session(app.extensions["sewamitra"].engine) as session:
        return {t.__name__: session.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def forged(path: str) -> dict[str, dict[str, str]]:
    """The ways a post can fail to be Twilio's: the headers for each."""
    url = f"{PUBLIC_URL}{path}?{QUERY}"
    return {
        "unsigned": {},
        "empty signature": {SIGNATURE_HEADER: ""},
        "another token": {SIGNATURE_HEADER: signature(url, EVERYTHING, token="someone-elses-token")},
        "another path": {SIGNATURE_HEADER: signature(f"{PUBLIC_URL}/twilio/voice/fallback?{QUERY}", EVERYTHING)},
        "another host": {SIGNATURE_HEADER: signature(f"http://localhost{path}?{QUERY}", EVERYTHING)},
        "no query": {SIGNATURE_HEADER: signature(f"{PUBLIC_URL}{path}", EVERYTHING)},
        "tampered form": {SIGNATURE_HEADER: signature(url, {**EVERYTHING, "From": "+919000000001"})},
    }


def test_every_webhook_refuses_every_forgery_and_records_nothing(app: Flask, redis_client: redis.Redis) -> None:
    client = app.test_client()
    keys_before = redis_client.dbsize()
    for path in webhooks(app):
        for how, headers in forged(path).items():
            if how == "another path" and path == "/twilio/voice/fallback":
                continue  # that signature is this path's own
            answer = client.post(path, data=EVERYTHING, query_string=QUERY, headers=headers)
            assert answer.status_code == 403, (path, how, answer.status_code)
    assert set(recorded(app).values()) == {0}
    assert redis_client.dbsize() == keys_before, redis_client.keys()


def test_a_refused_webhook_is_logged_on_one_line_without_its_query(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    query = "From=%2B919876543210&x=%0D%0A2026-01-01 INFO forged line&" + "y" * 10_000
    answer = post_raw(app.test_client(), "/twilio/sms", b"Body=hi", query=query.encode(), signed=False)
    assert answer.status_code == 403
    [refusal] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusal == "refused unsigned or mis-signed webhook '/twilio/sms' from 127.0.0.1"


# -- replays -------------------------------------------------------------------------------------------


def signed(client: FlaskClient, path_and_query: str, form: dict[str, str], token: str = "") -> ElementTree.Element:
    """A post as Twilio makes it (with its idempotency token when given); its TwiML."""
    headers = {SIGNATURE_HEADER: signature(PUBLIC_URL + path_and_query, form)}
    if token:
        headers["I-Twilio-Idempotency-Token"] = token
    path, _, query = path_and_query.partition("?")
    answer = client.post(path, data=form, query_string=query, headers=headers)
    assert answer.status_code in (200, 204), answer.data
    return ElementTree.fromstring(answer.data) if answer.data else ElementTree.Element("Response")


def next_step(document: ElementTree.Element) -> str:
    """Where the caller's keys go: the Gather's action (path and query)."""
    [gather] = document.findall("Gather")
    action = gather.get("action", "")
    assert parse_qs(urlsplit(action).query)["turn"], action
    return action


def test_the_same_voice_step_twice_gets_the_same_answer_and_stores_one_request(app: Flask) -> None:
    client = app.test_client()
    call = {"CallSid": "CA" + "6" * 32, "From": CITIZEN, "To": "+18005550100", "Direction": "inbound"}
    document = signed(client, "/twilio/voice", call)
    for keys in ("2", "1", "1", "226001", "1"):  # English, a new request, plumber, the PIN code, right
        document = signed(client, next_step(document), {**call, "Digits": keys})
    confirm = next_step(document)  # the visit's slot: 9, as soon as possible
    first = ElementTree.tostring(signed(client, confirm, {**call, "Digits": "9"}, token="retry-of-one"))
    again = ElementTree.tostring(signed(client, confirm, {**call, "Digits": "9"}, token="retry-of-one"))
    late = ElementTree.tostring(signed(client, confirm, {**call, "Digits": "2"}))  # the same step, other keys
    assert first == again == late
    # The caller says nothing at the beep: Twilio goes on to the Redirect after the Record, and retries it.
    [record] = ElementTree.fromstring(first).findall("Record")
    [nothing_said] = [r.text or "" for r in ElementTree.fromstring(first).findall("Redirect")]
    assert nothing_said.startswith(record.get("action", "?"))
    said = ElementTree.tostring(signed(client, nothing_said, call, token="retry-of-two"))
    assert said == ElementTree.tostring(signed(client, nothing_said, call, token="retry-of-two"))
    assert b"request number" in said
    counts = recorded(app)
    assert counts["ServiceRequest"] == 1
    with Session(app.extensions["sewamitra"].engine) as session:
        templates = sorted(str(t) for t in session.exec(select(SmsLog.template)).all())
    assert templates == ["privacy_notice", "request_created"]  # one confirmation (and a first call's notice)


def test_the_same_sms_twice_is_recorded_handled_and_answered_once(
    app: Flask, helpline_settings: Settings, redis_client: redis.Redis, sandbox: TwilioSandbox
) -> None:
    client = app.test_client()
    message = {"MessageSid": "SM" + "7" * 32, "From": CITIZEN, "To": "+18005550100", "Body": "what is this?"}
    for _ in range(2):
        signed(client, "/twilio/sms", message, token="idem-7")
    engine = app.extensions["sewamitra"].engine
    context.install(context.JobContext(helpline_settings, engine, redis_client, TwilioTelephony(helpline_settings)))
    try:
        rq_worker(redis_client).work(burst=True)
        signed(client, "/twilio/sms", message, token="idem-7")  # a third time, after it was handled
        rq_worker(redis_client).work(burst=True)
    finally:
        context.install(None)
    with Session(engine) as session:
        [sms] = session.exec(select(SmsLog).where(SmsLog.message_sid == message["MessageSid"])).all()
    assert sms.status == "handled"
    assert len([m for m in sandbox.messages if m["to"] == CITIZEN]) == 1


def test_the_same_status_callback_twice_keeps_one_call_log(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    client = app.test_client()
    status = {"CallSid": "CA" + "8" * 32, "From": CITIZEN, "CallStatus": "completed", "CallDuration": "42"}
    for _ in range(2):
        signed(client, "/twilio/voice/status", status, token="idem-8")
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.status, log.duration_s) == ("completed", 42)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
