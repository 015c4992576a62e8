"""Twilio posts signed forms to the voice webhooks; only correctly signed ones are answered, and
every answer is valid TwiML, whatever breaks behind it."""

from __future__ import annotations

import logging
from pathlib import Path
from xml.etree import ElementTree

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from callcentre.rooms import room_of
from core import pincodes
from core.settings import Settings
from sewamitra.app import create_app
from storage import rooms
from storage.models import CallLog, SmsLog
from tests.factories import (
    ALWAYS_OPEN,
    AUTH_TOKEN,
    PUBLIC_URL,
    make_settings,
    signed_post,
    with_hours,
    write_call_logs,
)

# Both databases: status callbacks upsert the call log (INSERT ... ON CONFLICT, coalesce) in each dialect's words.
pytestmark = pytest.mark.both_databases

CALL = {
    "CallSid": "CA0123456789abcdef0123456789abcdef",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "From": "+919876543210",
    "To": "+18005550100",
    "CallStatus": "ringing",
    "Direction": "inbound",
    "ApiVersion": "2010-04-01",
}


def test_a_signed_incoming_call_is_answered_with_twiml(client: FlaskClient) -> None:
    answer = signed_post(client, "/twilio/voice", CALL)
    assert answer.status_code == 200
    assert answer.mimetype == "text/xml"
    response = ElementTree.fromstring(answer.data)
    assert response.tag == "Response"
    says = response.findall("Say")
    assert [s.get("language") for s in says] == ["hi-IN", "en-IN"]
    assert says[0].get("voice") == "Polly.Aditi"
    assert [e.tag for e in response][-2:] == ["Gather", "Redirect"]  # never left in silence


def test_an_unsigned_post_is_refused(client: FlaskClient) -> None:
    assert client.post("/twilio/voice", data=CALL).status_code == 403


def test_a_post_signed_with_another_token_is_refused(client: FlaskClient) -> None:
    assert signed_post(client, "/twilio/voice", CALL, token="someone-elses-token").status_code == 403


def test_a_tampered_form_is_refused(client: FlaskClient) -> None:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + "/twilio/voice", CALL)
    tampered = {**CALL, "From": "+911111111111"}
    answer = client.post("/twilio/voice", data=tampered, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 403


def test_the_signature_is_checked_against_the_public_url_not_the_local_one(client: FlaskClient) -> None:
    local = RequestValidator(AUTH_TOKEN).compute_signature("http://localhost/twilio/voice", CALL)
    answer = client.post("/twilio/voice", data=CALL, headers={"X-Twilio-Signature": local})
    assert answer.status_code == 403


WEBHOOKS = [
    "/twilio/voice/step?turn=0",
    "/twilio/voice/status",
    "/twilio/voice/fallback",
    "/twilio/voice/queue/wait",
    "/twilio/voice/queue/result",
    "/twilio/sms/status",
    "/twilio/voice/agent?user=1",
    "/twilio/voice/agent/bridging?user=1",
    "/twilio/voice/agent/done",
]


@pytest.mark.parametrize("path", WEBHOOKS)
def test_every_webhook_refuses_an_unsigned_post(client: FlaskClient, path: str) -> None:
    assert client.post(path, data=CALL).status_code == 403


def test_the_fallback_apologises_in_valid_twiml(client: FlaskClient) -> None:
    answer = signed_post(client, "/twilio/voice/fallback", {**CALL, "ErrorCode": "11200"})
    response = ElementTree.fromstring(answer.data)
    assert answer.status_code == 200
    assert [e.tag for e in response][:2] == ["Say", "Say"]
    assert response[-1].tag in ("Enqueue", "Hangup")


# What Twilio runs in a waitUrl document (and in the action of a Gather inside one): no <Enqueue>.
WAIT_VERBS = {"Say", "Play", "Pause", "Gather", "Redirect", "Leave", "Hangup"}
WAITING = {**CALL, "CallStatus": "in-progress", "QueueSid": "QU" + "1" * 32, "QueuePosition": "1", "QueueTime": "30"}


def test_a_failure_while_the_caller_waits_in_the_queue_keeps_them_there(helpline_settings: Settings) -> None:
    """Found by `sewamitra bench calls`: the apology put a caller already in the queue into it again,
    and <Enqueue> is not allowed in a waitUrl document (Twilio error 12200)."""
    broken = with_hours(helpline_settings, **ALWAYS_OPEN).model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    client = create_app(broken).test_client()

    answer = signed_post(client, "/twilio/voice/queue/wait", WAITING)

    response = ElementTree.fromstring(answer.data)
    assert answer.status_code == 200, answer.data
    assert {e.tag for e in response} <= WAIT_VERBS, answer.data
    assert response[-1].tag == "Pause"  # then Twilio fetches the waitUrl again: the caller keeps their place


@pytest.mark.parametrize("failed", ["/twilio/voice/queue/wait", "/twilio/voice/queue/key"])
def test_the_fallback_for_a_failed_wait_document_keeps_the_caller_in_the_queue(
    helpline_settings: Settings, failed: str
) -> None:
    client = create_app(with_hours(helpline_settings, **ALWAYS_OPEN)).test_client()
    form = {**CALL, "ErrorCode": "11205", "ErrorUrl": PUBLIC_URL + failed}

    answer = signed_post(client, "/twilio/voice/fallback", form)

    response = ElementTree.fromstring(answer.data)
    assert answer.status_code == 200, answer.data
    assert {e.tag for e in response} <= WAIT_VERBS, answer.data


def test_a_broken_redis_still_gets_the_caller_an_apology(tmp_path: Path, helpline_settings: Settings) -> None:
    broken = helpline_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    client = create_app(broken).test_client()
    answer = signed_post(client, "/twilio/voice", CALL)
    assert answer.status_code == 200
    response = ElementTree.fromstring(answer.data)
    assert "technical problem" in "".join(s.text or "" for s in response.findall("Say"))


def test_a_forged_call_sid_gets_twiml_not_a_crash(client: FlaskClient) -> None:
    answer = signed_post(client, "/twilio/voice", {**CALL, "CallSid": "../../etc/passwd"})
    assert answer.status_code == 200
    assert ElementTree.fromstring(answer.data).tag == "Response"


def test_with_signature_checks_off_unsigned_posts_pass(helpline_settings: Settings, caplog) -> None:
    relaxed = helpline_settings.model_copy(
        update={"twilio": helpline_settings.twilio.model_copy(update={"validate_signatures": False})}
    )
    app = create_app(relaxed)
    assert "signature checks are OFF" in caplog.text
    assert app.test_client().post("/twilio/voice", data=CALL).status_code == 200


def test_without_an_auth_token_every_webhook_is_refused(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    assert app.test_client().post("/twilio/voice", data=CALL, headers={"X-Twilio-Signature": "x"}).status_code == 403


def test_a_retried_first_request_gets_the_same_answer(client: FlaskClient, redis_client: redis.Redis) -> None:
    first = signed_post(client, "/twilio/voice", CALL).data
    assert signed_post(client, "/twilio/voice", CALL).data == first


def test_a_calls_first_turn_asks_the_database_once_who_is_ringing(app: Flask, client: FlaskClient) -> None:
    checkouts: list[object] = []
    sa.event.listen(app.extensions["sewamitra"].engine, "checkout", lambda *args: checkouts.append(args))

    answer = signed_post(client, "/twilio/voice", CALL)

    assert answer.status_code == 200
    assert len(checkouts) == 1


def test_an_sms_webhook_with_redis_down_still_answers_twilio(helpline_settings: Settings) -> None:
    broken = helpline_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    client = create_app(broken).test_client()
    form = {"MessageSid": "SM" + "a" * 32, "From": "+919876543210", "To": "+18005550100", "Body": "YES"}
    answer = signed_post(client, "/twilio/sms", form)
    assert answer.status_code == 200
    assert ElementTree.fromstring(answer.data).tag == "Response"


def test_a_nul_in_a_message_or_a_call_field_loses_nothing(app: Flask, client: FlaskClient, caplog) -> None:
    """PostgreSQL refuses a NUL in text: the message and the call's log are kept without it."""
    form = {"MessageSid": "SM" + "d" * 32, "From": "+919876543210", "To": "+18005550100", "Body": "हाँ\x00 1"}
    assert signed_post(client, "/twilio/sms", form).status_code == 200
    status = {**CALL, "From": "+91\x00", "CallStatus": "completed\x00", "CallDuration": "12"}
    assert signed_post(client, "/twilio/voice/status", status).status_code == 204
    left = {**CALL, "CallSid": "CA" + "d" * 32, "QueueResult": "hangup\x00", "QueueTime": "7"}
    assert signed_post(client, "/twilio/voice/queue/result", left).status_code == 200
    engine = app.extensions["sewamitra"].engine
    write_call_logs(app)
    with Session(engine) as session:
        [sms] = session.exec(select(SmsLog)).all()
        logs = {log.call_sid: log for log in session.exec(select(CallLog)).all()}
    assert sms.body == "हाँ 1"
    assert sms.from_number == "+919876543210"
    assert (logs[CALL["CallSid"]].from_number, logs[CALL["CallSid"]].status) == ("+91", "completed")
    assert logs["CA" + "d" * 32].queue_result == "hangup"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("query", ["offer=99999999999999999999", "feedback=99999999999", "offer=-4&feedback=%C2%B2"])
def test_a_status_callback_naming_a_record_that_cannot_exist_is_logged_quietly(
    app: Flask, client: FlaskClient, caplog, query: str
) -> None:
    """Ids in our callback URLs past PostgreSQL's integer are no records at all, not a crash."""
    answer = signed_post(client, f"/twilio/voice/status?{query}", {**CALL, "CallStatus": "no-answer"})
    assert answer.status_code == 204
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert log.status == "no-answer"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("duration", ["²", "٣", "9" * 30, "-5", "1e3"])
def test_a_call_duration_that_is_not_a_count_of_seconds_keeps_the_call_log(
    app: Flask, client: FlaskClient, caplog, duration: str
) -> None:
    signed_post(client, "/twilio/voice/status", {**CALL, "CallStatus": "in-progress", "CallDuration": "40"})
    answer = signed_post(client, "/twilio/voice/status", {**CALL, "CallStatus": "completed", "CallDuration": duration})
    assert answer.status_code == 204
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.status, log.duration_s) == ("completed", 40)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_late_status_callback_never_undoes_the_end_of_the_call(app: Flask, client: FlaskClient) -> None:
    """Twilio may deliver a call's callbacks out of order: 'ringing' after 'completed' changes nothing,
    and a callback without a duration keeps the one already logged."""
    for status, duration in (("completed", "31"), ("ringing", "0"), ("in-progress", "")):
        form = {**CALL, "CallStatus": status, **({"CallDuration": duration} if duration else {})}
        assert signed_post(client, "/twilio/voice/status", form).status_code == 204
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.status, log.duration_s, log.outcome) == ("completed", 31, "no_flow")
    assert log.ended_at is not None
    assert log.from_number == CALL["From"]


def test_a_call_logged_from_the_agent_queue_is_completed_by_its_status_callback(
    app: Flask, client: FlaskClient
) -> None:
    left = {**CALL, "QueueResult": "hangup", "QueueTime": "42"}
    assert signed_post(client, "/twilio/voice/queue/result", left).status_code == 200
    done = {**CALL, "CallStatus": "completed", "CallDuration": "50"}
    assert signed_post(client, "/twilio/voice/status", done).status_code == 204
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.status, log.duration_s, log.queue_result, log.queue_wait_s) == ("completed", 50, "hangup", 42)
    assert log.ended_at is not None


def test_a_calls_end_closes_its_room_and_logs_the_path_its_session_took(app: Flask, client: FlaskClient) -> None:
    """The last callback reads the call's session (for its log) and closes the caller's room (no hold or
    mute left on it) in one round trip to Redis; a callback before the end leaves the room as it is."""
    connection = app.extensions["sewamitra"].redis
    assert signed_post(client, "/twilio/voice", CALL).status_code == 200  # the call's session, in Redis
    room = room_of(CALL["CallSid"])
    rooms.opened(connection, room, CALL["CallSid"], 7, "CA" + "a" * 32)
    assert signed_post(client, "/twilio/voice/status", {**CALL, "CallStatus": "in-progress"}).status_code == 204
    assert rooms.of(connection, room) is not None
    assert signed_post(client, "/twilio/voice/status", {**CALL, "CallStatus": "completed"}).status_code == 204
    assert rooms.of(connection, room) is None
    write_call_logs(app)
    with Session(app.extensions["sewamitra"].engine) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.status, log.outcome, log.path[:2]) == ("completed", "abandoned", ["welcome", "language"])


def test_the_service_areas_pin_codes_are_placed_when_the_app_starts_not_at_a_callers_turn(settings: Settings) -> None:
    """Found by `sewamitra bench calls`: each web process placed the PIN codes (a second or two of CPU)
    at its first caller's PIN, and every call that process served waited too."""
    pincodes.lookup.cache_clear()
    pincodes._district_centres.cache_clear()
    pincodes._pincodes.cache_clear()

    create_app(settings)
    placed = pincodes.lookup.cache_info().misses, pincodes._district_centres.cache_info().misses

    assert pincodes.lookup("226001") is not None
    assert (pincodes.lookup.cache_info().misses, pincodes._district_centres.cache_info().misses) == placed
