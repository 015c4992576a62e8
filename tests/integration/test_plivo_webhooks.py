"""Only Plivo may drive the helpline on Plivo, and a request is taken once. Every /plivo webhook
refuses (403) a post without Plivo's V3 signature for our URL (unsigned, without its nonce, signed
with another token, for another URL, tampered with) and a replay of a signed one (its nonce seen
before), and records nothing: no call log, message, request, callback or audit event, no call state.
A retry that Plivo signs anew changes nothing twice; the hangup callback keeps the call's log."""

from __future__ import annotations

import uuid

import pytest
import redis
from flask import Flask
from sqlmodel import Session, func, select

from core.settings import Settings
from devtools.plivo_simulator import NONCE_HEADER, SIGNATURE_HEADER, plivo_headers
from storage.models import AuditEvent, CallbackRequest, CallLog, ServiceRequest, SmsLog
from telephony.plivo.signature import NONCE_KEY
from tests.factories import ALWAYS_OPEN, AUTH_TOKEN, PUBLIC_URL, call, signed_post, with_hours, write_call_logs

CALL_UUID = "5" * 8 + "-5555-5555-5555-" + "5" * 12
EVERYTHING = {  # every field a Plivo webhook reads, with values that would make each one act
    "CallUUID": CALL_UUID,
    "From": "919876543210",
    "To": "918035350100",
    "CallStatus": "timeout",
    "Direction": "inbound",
    "Digits": "1",
    "Duration": "10",
    "HangupCause": "NORMAL_CLEARING",
    "DialStatus": "completed",
    "MessageUUID": "6" * 8 + "-6666-6666-6666-" + "6" * 12,
    "Text": "YES",
    "Status": "undelivered",
    "ErrorCode": "200",
}
QUERY = "turn=0&user=1&offer=1&feedback=1&flow=feedback&request=1&result=leave"
TABLES = (CallLog, SmsLog, ServiceRequest, CallbackRequest, AuditEvent)


@pytest.fixture
def telephony_platform() -> str:
    return "plivo"


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def webhooks(app: Flask) -> list[str]:
    """Every route Plivo posts to: found from the app, so a new webhook is covered by itself."""
    rules = app.url_map.iter_rules()
    found = sorted({rule.rule for rule in rules if rule.rule.startswith("/plivo") and "POST" in (rule.methods or ())})
    assert len(found) >= 13, found
    assert not [rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/twilio")]
    return found


def recorded(app: Flask) -> dict[str, int]:
    write_call_logs(app)  # a status callback's log waits in Redis for the writer
    with Session(app.extensions["sewamitra"].engine) as session:
        return {t.__name__: session.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def forged(path: str) -> dict[str, dict[str, str]]:
    """The ways a post can fail to be Plivo's: the headers for each."""
    url = f"{PUBLIC_URL}{path}?{QUERY}"
    good = plivo_headers(AUTH_TOKEN, url, EVERYTHING)
    return {
        "unsigned": {},
        "empty signature": {SIGNATURE_HEADER: "", NONCE_HEADER: good[NONCE_HEADER]},
        "no nonce": {SIGNATURE_HEADER: good[SIGNATURE_HEADER]},
        "another nonce": {SIGNATURE_HEADER: good[SIGNATURE_HEADER], NONCE_HEADER: "1" * 20},
        "another token": plivo_headers("someone-elses-token", url, EVERYTHING),
        "another path": plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}/plivo/voice/fallback?{QUERY}", EVERYTHING),
        "another host": plivo_headers(AUTH_TOKEN, f"http://localhost{path}?{QUERY}", EVERYTHING),
        "no query": plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}{path}", EVERYTHING),
        "tampered form": plivo_headers(AUTH_TOKEN, url, {**EVERYTHING, "From": "919000000001"}),
        "a huge nonce": {**good, NONCE_HEADER: "1" * 10_000},
    }


def test_every_plivo_webhook_refuses_every_forgery_and_records_nothing(app: Flask, redis_client: redis.Redis) -> None:
    client = app.test_client()
    keys_before = redis_client.dbsize()
    for path in webhooks(app):
        for how, headers in forged(path).items():
            if how == "another path" and path == "/plivo/voice/fallback":
                continue  # that signature is this path's own
            answer = client.post(path, data=EVERYTHING, query_string=QUERY, headers=headers)
            assert answer.status_code == 403, (path, how, answer.status_code)
    assert set(recorded(app).values()) == {0}
    assert redis_client.dbsize() == keys_before, redis_client.keys()


@pytest.mark.parametrize("path", ["/plivo/voice", "/plivo/voice/status", "/plivo/sms", "/plivo/sms/status"])
def test_a_replayed_plivo_request_is_refused_and_records_nothing_more(app: Flask, path: str) -> None:
    client = app.test_client()
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}{path}", EVERYTHING)
    first = client.post(path, data=EVERYTHING, headers=headers)
    assert first.status_code in (200, 204)
    after_first = recorded(app)
    replayed = client.post(path, data=EVERYTHING, headers=headers)
    assert replayed.status_code == 403
    assert b"already received" in replayed.data
    assert recorded(app) == after_first


def test_a_nonce_is_kept_a_week_and_no_longer(app: Flask, redis_client: redis.Redis) -> None:
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}/plivo/voice/status", EVERYTHING)
    assert app.test_client().post("/plivo/voice/status", data=EVERYTHING, headers=headers).status_code == 204
    ttl = redis_client.ttl(NONCE_KEY + headers[NONCE_HEADER])
    assert 6 * 24 * 3600 < ttl <= 7 * 24 * 3600


def test_the_same_step_signed_anew_gets_the_same_answer_and_stores_one_request(app: Flask) -> None:
    client = app.test_client()
    form = {"CallUUID": CALL_UUID, "From": "919876543210", "To": "918035350100", "Direction": "inbound"}
    signed_post(client, "/plivo/voice", form)
    for turn, digits in enumerate(["2", "1", "1", "226001", "1", "9"]):
        signed_post(client, f"/plivo/voice/step?turn={turn}", {**form, "Digits": digits})
    # The caller says nothing at the beep: Plivo posts the Record's action with no recording.
    first = signed_post(client, "/plivo/voice/record?turn=6", {**form, "RecordingDuration": "-1", "Digits": ""})
    again = signed_post(client, "/plivo/voice/record?turn=6", {**form, "RecordingDuration": "-1", "Digits": ""})
    assert first.status_code == again.status_code == 200
    assert first.data == again.data
    assert b"request number" in first.data
    assert recorded(app)["ServiceRequest"] == 1


def test_the_hangup_callback_keeps_the_calls_log(app: Flask) -> None:
    transcript = call(app, "2,1,1,226001#,1,9")
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.call_sid, log.status, log.outcome) == (transcript.call_sid, "completed", "request_created")
    assert log.duration_s == transcript.duration > 0
    assert (log.from_number, log.direction, log.hangup_cause) == ("+919876543210", "inbound", "NORMAL_CLEARING")


def test_an_unanswered_call_of_ours_is_logged_as_no_answer(app: Flask) -> None:
    form = {"CallUUID": str(uuid.uuid4()), "From": "918035350100", "To": "919812345678", "Direction": "outbound"}
    form |= {"CallStatus": "timeout", "Duration": "0", "HangupCause": "NO_ANSWER"}
    assert signed_post(app.test_client(), "/plivo/voice/status", form).status_code == 204
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.status, log.direction, log.to_number) == ("no-answer", "outbound", "+919812345678")
    assert log.hangup_cause == "NO_ANSWER"
