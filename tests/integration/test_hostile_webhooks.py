"""Hostile input to every Twilio webhook: correctly signed posts (so they reach the logic) with
random and malformed fields, repeated keys, huge values, raw non-UTF-8 bodies, wrong content
types and odd query strings. Whatever comes, Twilio gets 200/204 and TwiML it can run (parsed and
checked against its rules), the code never falls into its own error path for a real call, and
nothing is corrupted: every call's state still loads, no request appears from junk, and a real
call made afterwards still books a plumber."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlmodel import Session, func, select
from werkzeug.test import TestResponse

from core.settings import Settings
from devtools.simulator import CallSimulator, FlaskTransport
from dispatch import context
from storage import callqueue
from storage.models import ServiceRequest, SmsLog
from telephony.twilio.rest import TwilioTelephony
from telephony.twilio.signature import MAX_BODY
from tests.factories import ACCOUNT_SID, ALWAYS_OPEN, AUTH_TOKEN, PUBLIC_URL, with_hours
from tests.hostile import (
    FORM,
    call_states_load,
    check_voice_document,
    junk,
    maybe,
    pairs_of,
    post_pairs,
    post_raw,
    sender_of,
    twiml,
)

VICTIM = "CA" + "a" * 32  # a real call in progress while the junk arrives
CITIZEN = "+919876543210"
SIDS = st.one_of(st.just(VICTIM), st.from_regex(r"CA[0-9a-f]{32}", fullmatch=True), junk(40))
PHONES = st.one_of(
    st.sampled_from(
        [
            CITIZEN,
            "+18005550100",
            "anonymous",
            "unknown",
            "",
            "+266696687",
            "9876543210",
            "+91 98765 43210",
            "+447700900123",
        ]
    ),
    junk(40),
)
CALL_STATUSES = [
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
]
NUMBERS = st.one_of(st.integers(-3, 40).map(str), junk(30))
KEYS = st.one_of(st.text("0123456789*#", max_size=40), st.sampled_from(["1", "2", "0", "9", "#", ""]), junk())


def call_fields(**more: st.SearchStrategy[str | None]) -> dict[str, st.SearchStrategy[str | None]]:
    """Twilio's parameters of every voice request, each possibly missing or junk, and `more`."""
    return {
        "CallSid": maybe(SIDS),
        "AccountSid": maybe(st.one_of(st.just(ACCOUNT_SID), junk(40))),
        "From": maybe(PHONES),
        "To": maybe(PHONES),
        "Caller": maybe(PHONES),
        "CallStatus": maybe(st.one_of(st.sampled_from(CALL_STATUSES), junk(20))),
        "Direction": maybe(st.one_of(st.sampled_from(["inbound", "outbound-api", "outbound-dial"]), junk(20))),
        "ApiVersion": maybe(st.one_of(st.just("2010-04-01"), junk(20))),
        **more,
    }


def query(*names: str) -> st.SearchStrategy[bytes]:
    """A query string with these parameters (junk values), or raw bytes of any kind."""
    named = st.lists(st.tuples(st.sampled_from(names or ("x",)), NUMBERS), max_size=3).map(
        lambda pairs: "&".join(f"{name}={value}" for name, value in pairs).encode("utf-8", "surrogatepass")
    )
    return st.one_of(named, st.binary(max_size=60))


MESSAGE_SIDS = st.one_of(st.from_regex(r"(SM|MM)[0-9a-f]{32}", fullmatch=True), junk(40))
# path → (its form, its query string, whether its TwiML must move the call on by itself)
WEBHOOKS: dict[str, tuple[dict[str, st.SearchStrategy[str | None]], st.SearchStrategy[bytes], bool]] = {
    "/twilio/voice": (call_fields(), query("flow", "request"), True),
    "/twilio/voice/step": (
        call_fields(Digits=maybe(KEYS), SpeechResult=maybe(junk()), Confidence=maybe(junk(10))),
        query("turn"),
        True,
    ),
    "/twilio/voice/dialled": (
        call_fields(DialCallStatus=maybe(junk(20)), DialCallDuration=maybe(NUMBERS), DialCallSid=maybe(junk(40))),
        query("turn"),
        True,
    ),
    "/twilio/voice/dial": (call_fields(), query("turn"), True),
    "/twilio/voice/status": (
        call_fields(CallDuration=maybe(NUMBERS), Timestamp=maybe(junk(40)), SequenceNumber=maybe(NUMBERS)),
        query("offer", "feedback"),
        True,
    ),
    "/twilio/voice/fallback": (call_fields(ErrorCode=maybe(NUMBERS), ErrorUrl=maybe(junk())), query(), True),
    "/twilio/voice/queue/wait": (
        call_fields(
            QueuePosition=maybe(NUMBERS),
            QueueTime=maybe(NUMBERS),
            AvgQueueTime=maybe(NUMBERS),
            CurrentQueueSize=maybe(NUMBERS),
            MaxQueueSize=maybe(NUMBERS),
        ),
        query(),
        False,
    ),
    "/twilio/voice/queue/key": (call_fields(Digits=maybe(KEYS)), query(), True),
    "/twilio/voice/queue/connect": (call_fields(QueueTime=maybe(NUMBERS)), query(), True),
    "/twilio/voice/menu": (call_fields(), query("sent"), True),
    "/twilio/voice/room/event": (
        call_fields(
            ConferenceAction=maybe(st.one_of(st.sampled_from(["enter", "exit"]), junk(20))),
            ConferenceName=maybe(junk(60)),
            ConferenceMemberID=maybe(st.one_of(NUMBERS, junk(20))),
        ),
        query(),
        True,
    ),
    "/twilio/voice/queue/result": (
        call_fields(
            QueueResult=maybe(
                st.one_of(
                    st.sampled_from(
                        ["bridged", "hangup", "leave", "redirected", "queue-full", "error", "system-error"]
                    ),
                    junk(30),
                )
            ),
            QueueSid=maybe(junk(40)),
            QueueTime=maybe(NUMBERS),
        ),
        query(),
        True,
    ),
    "/twilio/voice/agent": (call_fields(), query("user"), True),
    "/twilio/voice/agent/answer": (call_fields(Digits=maybe(KEYS)), query("user"), True),
    "/twilio/voice/agent/bridging": (call_fields(), query("user"), False),
    "/twilio/voice/agent/done": (
        call_fields(
            DialCallStatus=maybe(
                st.one_of(
                    st.sampled_from(["completed", "answered", "busy", "no-answer", "failed", "canceled"]), junk(20)
                )
            ),
            DialCallSid=maybe(junk(40)),
            DialCallDuration=maybe(NUMBERS),
        ),
        query("user"),
        True,
    ),
    "/twilio/sms": (
        {
            "MessageSid": maybe(MESSAGE_SIDS),
            "SmsSid": maybe(MESSAGE_SIDS),
            "From": maybe(PHONES),
            "To": maybe(PHONES),
            "Body": maybe(junk(2000)),
            "NumMedia": maybe(NUMBERS),
            "NumSegments": maybe(NUMBERS),
        },
        query(),
        False,
    ),
    "/twilio/sms/status": (
        {
            "MessageSid": maybe(MESSAGE_SIDS),
            "MessageStatus": maybe(
                st.one_of(st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed"]), junk(20))
            ),
            "ErrorCode": maybe(NUMBERS),
        },
        query(),
        False,
    ),
}


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A client, with a real call already in progress (the victim the junk must not hurt)."""
    client = app.test_client()
    answer = post_pairs(client, "/twilio/voice", [("CallSid", VICTIM), ("From", CITIZEN), ("Direction", "inbound")])
    assert answer.status_code == 200
    return client


def requests_stored(app: Flask) -> int:
    with Session(app.extensions["sewamitra"].engine) as session:
        return session.exec(select(func.count()).select_from(ServiceRequest)).one()


def first(pairs: list[tuple[str, str]], name: str) -> str | None:
    """The value the app reads for `name` (Flask's form.get: the first one)."""
    return next((value for key, value in pairs if key == name), None)


def check_answer(app: Flask, path: str, answer: TestResponse, *, must_end: bool) -> None:
    """What Twilio got is something it can act on, never an error page."""
    assert answer.status_code in (200, 204), (answer.status_code, answer.data[:300])
    if answer.status_code == 204:
        assert path.endswith(("/status", "/room/event")), f"{path} answered nothing where TwiML was due"
        return
    root = twiml(answer)
    if path.startswith("/twilio/sms"):
        assert list(root) == [], "the SMS webhook never replies inline"
    else:
        check_voice_document(app, root, must_end=must_end)


def too_large(pairs: list[tuple[str, str]]) -> bool:
    """A form larger than any Twilio posts, which a webhook refuses (413) before reading it."""
    return len(urlencode(pairs).encode()) > MAX_BODY


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def a_real_call_still_books_a_plumber(app: Flask, client: FlaskClient) -> None:
    transport = FlaskTransport(client, PUBLIC_URL, AUTH_TOKEN)
    before = requests_stored(app)
    newcomer = "+919812345678"  # never in the junk: a first call, so the language menu comes first
    transcript = CallSimulator(transport, public_url=PUBLIC_URL, from_number=newcomer).run("2,1,1,226001#,1,9")
    assert not transcript.errors, transcript.render(requests=True)
    assert transcript.said("request number")
    assert requests_stored(app) == before + 1


Case = tuple[str, list[tuple[str, str]], bytes]
CASES: st.SearchStrategy[Case] = st.sampled_from(sorted(WEBHOOKS)).flatmap(
    lambda path: st.tuples(st.just(path), pairs_of(WEBHOOKS[path][0]), WEBHOOKS[path][1])
)
# Found by this test (each fixed): a NUL in a field lost the message or the call's log on
# PostgreSQL; an id past PostgreSQL's integer in a callback URL, and a CallDuration of "²", fell
# into the error path and lost the call's log.
FOUND: list[tuple[list[tuple[str, str]], bytes]] = [
    ([("CallSid", VICTIM), ("Digits", "9" * 5000)], b"turn=1"),
    ([("CallSid", VICTIM), ("CallSid", "CA" + "b" * 32), ("Digits", "1"), ("Digits", "2")], b"turn=1&turn=0"),
    ([("CallSid", VICTIM), ("CallStatus", "no-answer")], b"offer=99999999999999999999"),
    ([("CallSid", VICTIM), ("CallStatus", "busy")], b"feedback=99999999999"),
    ([("CallSid", VICTIM), ("CallStatus", "completed"), ("CallDuration", "²")], b""),
    (
        [
            ("CallSid", "CA" + "c" * 32),
            ("From", "+91\x00"),
            ("To", "\x00"),
            ("CallStatus", "completed\x00"),
            ("QueueResult", "leave\x00"),
            ("MessageSid", "SM" + "c" * 32),
            ("Body", "\x00"),
            ("ErrorCode", "\x00"),
        ],
        b"",
    ),
]


def with_found_cases(test: Callable[[Case], None]) -> Callable[[Case], None]:
    """Every case found once, replayed on every webhook."""
    for path in sorted(WEBHOOKS):
        for pairs, raw_query in FOUND:
            test = example(case=(path, pairs, raw_query))(test)
    return test


def test_any_signed_form_gets_twiml_and_changes_nothing_it_should_not(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    before = requests_stored(app)

    @hypothesis_settings(max_examples=5 * hypothesis_settings().max_examples)
    @given(case=CASES)
    @with_found_cases
    def hostile(case: Case) -> None:
        path, pairs, raw_query = case
        caplog.clear()
        answer = post_pairs(client, path, pairs, query=raw_query)
        if too_large(pairs):  # larger than any of Twilio's posts: refused unread
            assert answer.status_code == 413, (answer.status_code, answer.data[:300])
        elif first(pairs, "AccountSid") not in (None, "", ACCOUNT_SID):  # signed, but for another account
            assert answer.status_code == 403, (answer.status_code, answer.data[:300])
        else:
            check_answer(app, path, answer, must_end=WEBHOOKS[path][2])
        sid = first(pairs, "CallSid") or ""
        if path.startswith("/twilio/sms") or callqueue.CALL_SID.match(sid):
            assert failures(caplog) == [], "a real call's junk fell into the error path"
        call_states_load(redis_client)
        assert requests_stored(app) == before

    hostile()
    a_real_call_still_books_a_plumber(app, client)


BODIES = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.sampled_from(
            [
                b"CallSid=CA" + b"a" * 32,
                b"Digits=\xff\xfe",
                b"From=%FF%00",
                b"Body=\xe0\xa4",
                b"Digits=1",
                b"&",
                b"=",
                b"%",
                b"%%",
                b"CallSid",
                b"\x00=\x00",
                b"MessageSid=SM" + b"c" * 32,
                b"Body=%E0%A4%A8",
            ]
        ),
        max_size=8,
    ).map(b"&".join),
)
CONTENT_TYPES = st.sampled_from(
    [
        FORM,
        FORM + "; charset=latin-1",
        "application/json",
        "text/plain",
        "text/xml",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "",
    ]
)


def test_an_agent_who_takes_a_waiting_caller_gets_a_recorded_room_twilio_can_run(
    app: Flask, client: FlaskClient
) -> None:
    """Found by the raw-bodies test below (2026-12-07): the agent's recorded leg into a caller's room,
    `<Dial><Conference record=… recordingStatusCallback=…>`, is TwiML Twilio runs; the checker knew no
    `<Conference>` in a `<Dial>`."""
    waiting = post_pairs(client, "/twilio/voice/queue/wait", [("CallSid", VICTIM), ("QueuePosition", "1")])
    assert waiting.status_code == 200

    agent = "CA" + "b" * 32
    answer = post_pairs(client, "/twilio/voice/agent/answer", [("CallSid", agent), ("Digits", "1")], query=b"user=7")

    check_answer(app, "/twilio/voice/agent/answer", answer, must_end=True)
    room = twiml(answer).find("Dial/Conference")
    assert room is not None, answer.data
    assert room.get("record") == "record-from-start"


def test_raw_bodies_of_any_bytes_and_content_type_get_an_answer(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    before = requests_stored(app)

    @hypothesis_settings(max_examples=3 * hypothesis_settings().max_examples)
    @given(
        path=st.sampled_from(sorted(WEBHOOKS)),
        body=BODIES,
        content_type=CONTENT_TYPES,
        raw_query=st.binary(max_size=30),
    )
    @example(
        path="/twilio/voice/step",
        body=b"CallSid=CA" + b"a" * 32 + b"&Digits=\xff\xfe\x00",
        content_type=FORM,
        raw_query=b"turn=\xff",
    )
    @example(
        path="/twilio/voice",
        body=b'{"CallSid": "CA' + b"a" * 32 + b'"}',
        content_type="application/json",
        raw_query=b"",
    )
    def hostile(path: str, body: bytes, content_type: str, raw_query: bytes) -> None:
        answer = post_raw(client, path, body, content_type=content_type, query=raw_query)
        check_answer(app, path, answer, must_end=WEBHOOKS[path][2])
        call_states_load(redis_client)
        assert requests_stored(app) == before

    hostile()


def test_a_message_with_any_body_is_recorded_once(app: Flask, client: FlaskClient) -> None:
    """Whatever the text, a message from a real phone with a real MessageSid is kept, as sent."""
    engine = app.extensions["sewamitra"].engine
    sent = itertools.count()

    @given(body=junk(1700))
    @example(body="DONE 1234567 1234\x00")
    @example(body="हाँ\x00\x01\x7f 🙂")
    def hostile(body: str) -> None:
        sid = f"SM{next(sent):032x}"  # a new message each time: the same MessageSid again is a replay
        pairs = [("MessageSid", sid), ("From", CITIZEN), ("Body", body)]
        answer = post_pairs(client, "/twilio/sms", pairs)
        with Session(engine) as session:
            kept = session.exec(select(SmsLog).where(SmsLog.message_sid == sid)).all()
        if too_large(pairs):  # far past Twilio's 1,600 characters: refused unread
            assert answer.status_code == 413
            assert kept == []
            return
        check_answer(app, "/twilio/sms", answer, must_end=False)
        [sms] = kept
        assert sms.from_number == CITIZEN
        assert sms.body == stored_form(body)[:1600]  # NULs dropped, then cut to what Twilio carries

    hostile()


def stored_form(body: str) -> str:
    """What of a body the helpline can keep: every character but NUL, which no database column holds."""
    return body.replace("\x00", "")


# -- whole calls, with junk keyed at every prompt of every flow ------------------------------------

FLOW_KEYS = st.one_of(
    st.sampled_from(
        [
            "1",
            "2",
            "3",
            "4",
            "5",
            "9",
            "0",
            "#",
            "*",
            "",
            "226001",
            "226001#",
            "110001",
            "{number}",
            "{number}#",
            "{code}",
            "{code}#",
            "1234567",
            "12",
            "2260011",
        ]
    ),
    junk(40),
)


@pytest.fixture
def installed(helpline_settings: Settings, app: Flask, redis_client: redis.Redis) -> Iterator[context.JobContext]:
    ctx = context.JobContext(
        helpline_settings, app.extensions["sewamitra"].engine, redis_client, TwilioTelephony(helpline_settings)
    )
    context.install(ctx)
    yield ctx
    context.install(None)


ROLES = {"citizen": "stranger", "worker": "offered", "worker on a job": "assigned", "feedback": "citizen"}


def start_of(ctx: context.JobContext, who: str) -> tuple[str, list[tuple[str, str]], str, str]:
    """Where a call of this kind starts: its URL, its parties, and the number and code it may key."""
    caller = sender_of(ctx, ROLES[who])
    number, code = "1234567", "1234"
    if caller.request_id is not None:
        with Session(ctx.engine) as session:
            request = session.get(ServiceRequest, caller.request_id)
            assert request is not None
            number, code = request.number, request.completion_code or "0000"
    if who == "feedback":
        parties = [("From", "+18005550100"), ("To", caller.phone), ("Direction", "outbound-api")]
        return f"/twilio/voice?flow=feedback&request={caller.request_id}", parties, number, code
    return "/twilio/voice", [("From", caller.phone), ("To", "+18005550100"), ("Direction", "inbound")], number, code


def test_junk_keyed_at_every_prompt_of_every_flow_never_breaks_a_call(
    app: Flask, client: FlaskClient, installed: context.JobContext, caplog: pytest.LogCaptureFixture
) -> None:
    calls = itertools.count(1)

    @hypothesis_settings(max_examples=2 * hypothesis_settings().max_examples)
    @given(who=st.sampled_from(sorted(ROLES)), keys=st.lists(FLOW_KEYS, min_size=1, max_size=8))
    @example(who="worker on a job", keys=["3", "{number}", "{code}"])
    @example(who="feedback", keys=["²"])
    @example(who="feedback", keys=["9"])
    @example(who="citizen", keys=["2", "1", "1", "226001", "1"])
    def hostile(who: str, keys: list[str]) -> None:
        caplog.clear()
        url, parties, number, code = start_of(installed, who)
        call = [("CallSid", f"CA{next(calls):032x}"), *parties]
        path, _, query = url.partition("?")
        answer = post_pairs(client, path, call, query=query.encode())
        for keyed in keys:
            check_answer(app, path, answer, must_end=True)
            gathers = twiml(answer).findall("Gather")
            if not gathers:
                break  # the call went to the queue, or ended
            path, _, query = gathers[0].get("action", "").partition("?")
            digits = keyed.replace("{number}", number).replace("{code}", code)
            sent = [*call, ("Digits", digits)]
            if too_large(sent):  # more than any keypad sends: refused unread; the caller keys nothing instead
                assert post_pairs(client, path, sent, query=query.encode()).status_code == 413
                sent = call
            answer = post_pairs(client, path, sent, query=query.encode())
        check_answer(app, path, answer, must_end=True)
        assert failures(caplog) == [], "a call fell into the error path"
        call_states_load(installed.redis)

    hostile()
