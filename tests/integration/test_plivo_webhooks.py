"""Only Plivo may drive the helpline on Plivo, and a request is taken once. Every /plivo webhook
refuses (403) a post without Plivo's V3 signature for our URL (unsigned, without its nonce, signed
with another token, for another URL, tampered with) and a replay of a signed one (its nonce seen
before), and records nothing: no call log, message, request, callback or audit event, no call state.
The one replay answered is a menu turn's that commits nothing and reads no one's records: it is
answered as it was, without a nonce remembered. A retry that Plivo signs anew changes nothing
twice; the hangup callback keeps the call's log."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, func, select

from core.settings import Settings
from devtools.plivo_simulator import NONCE_HEADER, SIGNATURE_HEADER, plivo_headers
from flows import prompts
from storage.models import AuditEvent, CallbackRequest, CallLog, ServiceRequest, SmsLog
from telephony.plivo.signature import NONCE_KEY
from tests.factories import (
    ALWAYS_OPEN,
    AUTH_TOKEN,
    PUBLIC_URL,
    call,
    redis_dump,
    redis_sends,
    signed_post,
    with_hours,
    write_call_logs,
)

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


def next_step(answer: bytes) -> str:
    """Where Plivo posts the caller's keys next: the GetDigits' action (path and query)."""
    [gather] = ElementTree.fromstring(answer).findall("GetDigits")
    action = urlsplit(gather.get("action", ""))
    return f"{action.path}?{action.query}"


def posted_twice(client: FlaskClient, path_and_query: str, form: dict[str, str]) -> tuple[int, int, bytes]:
    """The same signed request posted twice, nonce and all, as someone who copied it would: both
    statuses, and the first answer."""
    path, _, query = path_and_query.partition("?")
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}{path_and_query}", form)
    first = client.post(path, data=form, query_string=query, headers=headers)
    again = client.post(path, data=form, query_string=query, headers=headers)
    assert first.status_code == 200, first.data
    if again.status_code == 200:
        assert again.data == first.data
    return first.status_code, again.status_code, first.data


CALLER = {"CallUUID": CALL_UUID, "From": "919876543210", "To": "918035350100", "Direction": "inbound"}


def test_a_replayed_menu_turn_that_commits_nothing_is_answered_again_without_a_nonce_kept(
    app: Flask, redis_client: redis.Redis
) -> None:
    client = app.test_client()
    language = next_step(signed_post(client, "/plivo/voice", CALLER).data)
    main_menu = next_step(signed_post(client, language, {**CALLER, "Digits": "2"}).data)  # English: remembered
    nonces_before = set(redis_client.keys(NONCE_KEY + "*"))
    recorded_before = recorded(app)

    first, again, services = posted_twice(client, main_menu, {**CALLER, "Digits": "1"})  # a new request

    assert (first, again) == (200, 200)
    assert prompts.text("choose_service", "en").encode() in services
    assert set(redis_client.keys(NONCE_KEY + "*")) == nonces_before
    assert recorded(app) == recorded_before


def test_a_replayed_menu_turn_that_reads_the_callers_requests_is_refused(app: Flask, redis_client: redis.Redis) -> None:
    client = app.test_client()
    language = next_step(signed_post(client, "/plivo/voice", CALLER).data)
    main_menu = next_step(signed_post(client, language, {**CALLER, "Digits": "2"}).data)

    first, again, _asked = posted_twice(client, main_menu, {**CALLER, "Digits": "2"})  # track: their requests read

    assert (first, again) == (200, 403)


def test_a_replayed_menu_turn_that_commits_is_refused_and_records_nothing_more(app: Flask) -> None:
    client = app.test_client()
    language = next_step(signed_post(client, "/plivo/voice", CALLER).data)
    recorded_before = recorded(app)

    first, again, _main_menu = posted_twice(client, language, {**CALLER, "Digits": "2"})  # the notice's SMS, once

    assert (first, again) == (200, 403)
    assert recorded(app) == recorded_before | {"SmsLog": recorded_before["SmsLog"] + 1}


def test_a_turn_that_keeps_its_session_checks_its_nonce_in_the_same_round_trip_and_its_replay_is_refused(
    app: Flask, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    step = next_step(signed_post(client, "/plivo/voice", CALLER).data)
    for digits in ("2", "1", "1", "226001", "1"):  # English, a new request, a plumber, a PIN code, right
        step = next_step(signed_post(client, step, {**CALLER, "Digits": digits}).data)
    path, _, query = step.partition("?")
    form = {**CALLER, "Digits": "9"}  # as soon as possible; then the address, recorded: the session kept
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}{step}", form)
    sent = redis_sends(monkeypatch)
    assert client.post(path, data=form, query_string=query, headers=headers).status_code == 200
    assert len(sent) == 1  # the nonce remembered in the script that keeps the session
    kept = redis_dump(redis_client)

    replayed = client.post(path, data=form, query_string=query, headers=headers)

    assert replayed.status_code == 403
    assert redis_dump(redis_client) == kept


def test_a_replayed_call_is_refused_and_leaves_the_call_as_it_was(app: Flask, redis_client: redis.Redis) -> None:
    client = app.test_client()
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}/plivo/voice", CALLER)
    assert client.post("/plivo/voice", data=CALLER, headers=headers).status_code == 200
    redis_client.delete(f"sewamitra:call:{CALL_UUID}")  # as hours after the call, its state expired
    kept = redis_dump(redis_client)

    replayed = client.post("/plivo/voice", data=CALLER, headers=headers)

    assert replayed.status_code == 403
    assert redis_dump(redis_client) == kept


def test_a_recordings_action_checks_its_nonce_as_it_takes_the_turn_and_its_replay_is_refused(
    app: Flask, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    step = next_step(signed_post(client, "/plivo/voice", CALLER).data)
    for digits in ("2", "1", "1", "226001", "1"):
        step = next_step(signed_post(client, step, {**CALLER, "Digits": digits}).data)
    signed_post(client, step, {**CALLER, "Digits": "9"})  # as soon as possible: the address is recorded
    form = {**CALLER, "RecordingDuration": "-1", "Digits": ""}  # the caller said nothing at the beep
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}/plivo/voice/record?turn=6", form)
    sent = redis_sends(monkeypatch)

    first = client.post("/plivo/voice/record", data=form, query_string="turn=6", headers=headers)

    assert first.status_code == 200
    assert b"request number" in first.data
    [with_the_nonce] = [repr(trip) for trip in sent if headers[NONCE_HEADER] in repr(trip)]
    assert "EVALSHA" in with_the_nonce  # remembered in the script that takes the call's turn
    after = recorded(app)
    kept = redis_dump(redis_client)

    replayed = client.post("/plivo/voice/record", data=form, query_string="turn=6", headers=headers)

    assert replayed.status_code == 403
    assert recorded(app) == after
    assert redis_dump(redis_client) == kept


def test_a_hangup_callback_checks_its_nonce_as_it_reads_the_call_and_its_replay_is_refused(
    app: Flask, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    signed_post(client, "/plivo/voice", CALLER)
    hangup = {**CALLER, "CallStatus": "completed", "Duration": "40", "HangupCause": "NORMAL_CLEARING"}
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}/plivo/voice/status", hangup)
    sent = redis_sends(monkeypatch)

    assert client.post("/plivo/voice/status", data=hangup, headers=headers).status_code == 204

    [with_the_nonce] = [repr(trip) for trip in sent if headers[NONCE_HEADER] in repr(trip)]
    assert f"sewamitra:call:{CALL_UUID}" in with_the_nonce  # sent with the call's session read
    after = recorded(app)
    kept = redis_dump(redis_client)
    replayed = client.post("/plivo/voice/status", data=hangup, headers=headers)
    assert replayed.status_code == 403
    assert recorded(app) == after
    assert redis_dump(redis_client) == kept


def test_a_replayed_status_callback_before_the_hangup_is_refused(app: Flask) -> None:
    client = app.test_client()
    signed_post(client, "/plivo/voice", CALLER)
    ringing = {**CALLER, "CallStatus": "in-progress"}
    headers = plivo_headers(AUTH_TOKEN, f"{PUBLIC_URL}/plivo/voice/status", ringing)

    assert client.post("/plivo/voice/status", data=ringing, headers=headers).status_code == 204
    assert client.post("/plivo/voice/status", data=ringing, headers=headers).status_code == 403


@pytest.mark.parametrize("query", ["turn=0", "turn=0&token=spoilt"])
def test_a_replayed_step_without_its_token_or_with_a_bad_one_is_refused(app: Flask, query: str) -> None:
    client = app.test_client()
    signed_post(client, "/plivo/voice", CALLER)

    first, again, _answer = posted_twice(client, f"/plivo/voice/step?{query}", {**CALLER, "Digits": "2"})

    assert (first, again) == (200, 403)


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
