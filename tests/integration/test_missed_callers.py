"""Missed callers and callbacks worked to an end (issue 20), on Twilio and on Plivo, by a frozen
clock: a caller who hangs up in the agent queue after waiting long enough gets a callback task and
an SMS saying the helpline rings them back (one who hangs up at once gets neither); an agent takes
the callback, rings the caller through the helpline (their own phone first, then the caller with the
helpline's number: the agent never sees it), confirms each try's outcome and note; no answer moves
it on, and after `agents.callback_max_attempts` tries that found nobody it closes unreachable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core import phones
from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Callee, Rang, Transcript
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, retention
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CallbackAttempt,
    CallbackOutcome,
    CallbackRequest,
    CallbackStatus,
    CallLog,
    Role,
    SmsLog,
    User,
)
from telephony import telephony
from tests.calls import Line
from tests.console import Console, add_user
from tests.factories import (
    ACCOUNT_SID,
    ALWAYS_OPEN,
    CITIZEN,
    PLIVO_AUTH_ID,
    PUBLIC_URL,
    call_form,
    platform_of,
    run_context_jobs,
    signed_post,
    simulator,
    with_hours,
)

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)  # 11:30 in Lucknow
ASHA_DESK = "+919811110001"
HELPLINE = {"twilio": "+18005550100", "plivo": "918035350100"}
MISSED_SMS = "1107160000000000070"
OTHER = "+919900000002"
LANDLINE = "+915222345678"  # a Lucknow landline: no SMS reaches it

pytestmark = pytest.mark.both_platforms


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def jobs_context(app: Flask, clock: FrozenClock) -> Iterator[context.JobContext]:
    """The RQ workers' context, on the app's services and its frozen clock."""
    runtime = app.extensions["sewamitra"]
    ctx = context.JobContext(runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings), clock)
    context.install(ctx)
    yield ctx
    context.install(None)


def engine(app: Flask) -> sa.Engine:
    return app.extensions["sewamitra"].engine


def callbacks(app: Flask) -> list[CallbackRequest]:
    with Session(engine(app)) as session:
        return list(session.exec(select(CallbackRequest).order_by(col(CallbackRequest.id))).all())


# How long a caller holds before hanging up: on Plivo the helpline's own clock, which the test moves
# on; on Twilio the queue's clock (QueueTime), by the simulator's rules: a caller who hangs up before
# the first round of hold has waited 0 s, one who hears it and presses 2 (stay in the queue) 14 s.
LONG = {"twilio": 14, "plivo": 12}
SHORT = {"twilio": 0, "plivo": 3}


def hangs_up_in_the_queue(app: Flask, clock: FrozenClock, waits: dict[str, int], number: str = CITIZEN) -> Transcript:
    """A new English caller asks for an agent, holds as long as `waits` says and hangs up."""
    seconds = waits[platform_of(app)]
    if platform_of(app) == "twilio":
        keys = Line("2", "3", *(["2"] if seconds else []), "hangup")
    else:
        keys = Line("2", "3", lambda: clock.advance(timedelta(seconds=seconds)), "hangup")
    caller = simulator(app.test_client(), from_number=number).run(keys)
    assert not caller.errors, caller.render(requests=True)
    assert caller.said("Please hold; the next available agent will take your call.")
    assert queue_wait(app, caller.call_sid) == seconds
    return caller


def promised(sandbox: TwilioSandbox) -> list[dict[str, str]]:
    """The SMS that promise a callback, as the platform was asked to send them."""
    return [m for m in sandbox.messages if "call you back" in m["body"]]


def queue_wait(app: Flask, call_sid: str) -> int | None:
    with Session(engine(app)) as session:
        log = session.exec(select(CallLog).where(CallLog.call_sid == call_sid)).one()
    assert log.queue_result == "hangup"
    return log.queue_wait_s


# -- the missed caller ------------------------------------------------------------------------------------


def test_a_caller_who_hangs_up_after_waiting_is_promised_a_callback_by_sms_one_who_hangs_up_at_once_is_not(
    app: Flask, clock: FrozenClock, jobs_context: context.JobContext, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    hangs_up_in_the_queue(app, clock, SHORT, OTHER)
    run_context_jobs(jobs_context)
    assert callbacks(app) == []
    assert promised(sandbox) == []

    caller = hangs_up_in_the_queue(app, clock, LONG)
    run_context_jobs(jobs_context)
    [callback] = callbacks(app)
    assert (callback.phone, callback.reason, callback.language, callback.status) == (
        CITIZEN,
        "missed",
        "en",
        CallbackStatus.PENDING,
    )
    assert (callback.call_sid, callback.due_at, callback.caller_id is not None) == (caller.call_sid, clock.now(), True)
    [told] = promised(sandbox)
    assert told["to"] == CITIZEN
    assert told["body"] == (
        "Sewamitra: sorry we could not answer your call. The helpline will call you back soon, or call 155330."
    )
    if telephony_platform == "plivo":
        assert told["dlt_template_id"] == MISSED_SMS
    with Session(engine(app)) as session:
        [sms] = session.exec(select(SmsLog).where(SmsLog.template == "missed_call_callback")).all()
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "callback.requested")).all()
    assert (sms.template, sms.to_number) == ("missed_call_callback", CITIZEN)  # recorded, retried like every SMS
    assert (event.entity_id, event.reason, event.detail) == (
        callback.id,
        "missed",
        {"waited_s": LONG[telephony_platform]},
    )

    # The same caller rings again and hangs up again: still one open callback, and no second SMS.
    clock.advance(timedelta(minutes=5))
    again = Line("3", *(["2"] if telephony_platform == "twilio" else [lambda: clock.advance(timedelta(seconds=20))]))
    simulator(app.test_client(), from_number=CITIZEN).run(Line(*again.items, "hangup"))
    run_context_jobs(jobs_context)
    assert [c.id for c in callbacks(app)] == [callback.id]
    assert len(promised(sandbox)) == 1


def test_a_withheld_caller_who_hangs_up_in_the_queue_gets_no_callback(
    app: Flask, clock: FrozenClock, jobs_context: context.JobContext, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    hangs_up_in_the_queue(app, clock, LONG, "anonymous")
    run_context_jobs(jobs_context)
    assert callbacks(app) == []
    assert promised(sandbox) == []


def test_a_landline_caller_who_hangs_up_in_the_queue_is_owed_a_callback_but_gets_no_sms(
    app: Flask, clock: FrozenClock, jobs_context: context.JobContext, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    hangs_up_in_the_queue(app, clock, LONG, LANDLINE)
    run_context_jobs(jobs_context)
    assert [(c.phone, c.reason) for c in callbacks(app)] == [(LANDLINE, "missed")]
    assert promised(sandbox) == []


# -- the callback list and click-to-call -------------------------------------------------------------------


def signed_in(app: Flask, username: str, phone: str | None = ASHA_DESK) -> Console:
    """An agent with a desk phone, whose console (and the prompts of their phone) is in English."""
    add_user(engine(app), username, Role.AGENT, phone=phone)
    with session_scope(engine(app)) as session:
        session.execute(sa.update(User).where(col(User.username) == username).values(language="en"))
    console = Console(app)
    console.sign_in(username)
    return console


def row_of(console: Console, callback_id: int) -> str:
    """The callback's row on the list, as the agent's browser gets it."""
    shown = console.get("/console/callbacks").get_data(as_text=True)
    start = shown.index(f'<tr id="callback-{callback_id}">')
    return shown[start : shown.index("</tr>", start)]


def agent_answers(app: Flask, sandbox: TwilioSandbox, keys: str, callee: Callee) -> Transcript:
    """The platform runs the call the helpline placed to the agent's phone: they pick up and key
    `keys`; the caller's phone does as `callee` says."""
    placed = sandbox.calls[-1]
    plivo = platform_of(app) == "plivo"
    ringing = simulator(
        app.test_client(),
        direction="outbound" if plivo else "outbound-api",
        from_number=placed["from"],
        to_number=placed["to"],
        voice_path=placed["url"].removeprefix(PUBLIC_URL),
        status_path=placed["status_callback"].removeprefix(PUBLIC_URL),
        callee=callee,
        account_sid=PLIVO_AUTH_ID if plivo else ACCOUNT_SID,
        media_url=sandbox.base_url,
    )
    transcript = ringing.run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def attempts(app: Flask) -> list[tuple[bool, str | None, CallbackOutcome | None, str | None]]:
    with Session(engine(app)) as session:
        found = session.exec(select(CallbackAttempt).order_by(col(CallbackAttempt.id))).all()
    return [(a.dialled, a.dial_status, a.outcome, a.note) for a in found]


def test_an_agent_calls_a_missed_caller_back_through_the_helpline_and_confirms_each_outcome(
    app: Flask, clock: FrozenClock, jobs_context: context.JobContext, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    hangs_up_in_the_queue(app, clock, LONG)
    run_context_jobs(jobs_context)
    [callback] = callbacks(app)
    asha = signed_in(app, "asha")
    row = row_of(asha, callback.id or 0)
    assert "Hung up in the queue" in row
    assert "English" in row
    assert "0 of 3" in row
    assert "nobody" in row
    assert "Not tried yet" in row

    # First try: Asha clicks "Call now"; her own desk phone rings, she presses 1; the caller does not answer.
    asha.post(f"/console/callbacks/{callback.id}/call")
    run_context_jobs(jobs_context)
    ring = sandbox.calls[-1]
    assert ring["to"] == ASHA_DESK
    assert "/voice/callback?attempt=" in ring["url"]
    assert CITIZEN[-10:] not in ring["url"] + ring["status_callback"]
    missed = agent_answers(app, sandbox, "1", Callee("no-answer"))
    assert missed.said("Sewamitra console: to call back the caller, press 1.")
    citizen = CITIZEN.removeprefix("+") if telephony_platform == "plivo" else CITIZEN
    assert [e for e in missed.events if isinstance(e, Rang)] == [Rang(citizen, HELPLINE[telephony_platform])]
    assert missed.said("The caller did not answer. Confirm the outcome on the console. Goodbye.")
    assert not any(CITIZEN[-10:] in text for text in missed.heard)
    row = row_of(asha, callback.id or 0)
    assert "mine" in row
    assert "Outcome to confirm" in row
    assert '<option value="no_answer" selected>' in row  # pre-filled from how the dial ended
    asha.post(f"/console/callbacks/{callback.id}/outcome", {"outcome": "no_answer", "note": "Rang out, 30 s"})
    assert attempts(app) == [(True, "no_answer", CallbackOutcome.NO_ANSWER, "Rang out, 30 s")]
    [moved] = callbacks(app)
    assert (moved.status, moved.due_at) == (CallbackStatus.PENDING, clock.now() + timedelta(minutes=30))
    row = row_of(asha, callback.id or 0)
    assert "1 of 3" in row
    assert "No answer" in row
    assert "Rang out, 30 s" in row

    # Second try: the caller picks up and they talk; Asha confirms "reached": the callback is done.
    clock.advance(timedelta(minutes=30))
    asha.post(f"/console/callbacks/{callback.id}/call")
    run_context_jobs(jobs_context)
    talked = agent_answers(app, sandbox, "1", Callee("completed", talks=40))
    assert talked.said("Connecting you to the caller.")
    assert talked.said("The call has ended. Confirm its outcome on the console. Goodbye.")
    assert '<option value="reached" selected>' in row_of(asha, callback.id or 0)
    asha.post(f"/console/callbacks/{callback.id}/outcome", {"outcome": "reached", "note": "Booked a plumber"})
    [done] = callbacks(app)
    assert (done.status, done.owner_id is not None, done.handled_at) == (CallbackStatus.DONE, True, clock.now())
    assert f'id="callback-{callback.id}"' not in asha.get("/console/callbacks").get_data(as_text=True)
    assert [a[2] for a in attempts(app)] == [CallbackOutcome.NO_ANSWER, CallbackOutcome.REACHED]


def test_voicemail_or_nobody_at_the_agents_phone_rings_no_caller_and_the_agent_may_try_again(
    app: Flask, clock: FrozenClock, jobs_context: context.JobContext, sandbox: TwilioSandbox
) -> None:
    hangs_up_in_the_queue(app, clock, LONG)
    run_context_jobs(jobs_context)
    [callback] = callbacks(app)
    asha = signed_in(app, "asha")
    asha.post(f"/console/callbacks/{callback.id}/call")
    run_context_jobs(jobs_context)
    voicemail = agent_answers(app, sandbox, "-", Callee("completed", talks=30))
    assert not [e for e in voicemail.events if isinstance(e, Rang)]
    refused = asha.post(f"/console/callbacks/{callback.id}/call", follow_redirects=True).get_data(as_text=True)
    assert "Confirm the outcome of the last call first." in refused
    # Nobody picks up the desk phone at all: the platform's status callback voids the try.
    asha.post(f"/console/callbacks/{callback.id}/outcome", {"outcome": "busy", "note": ""})
    asha.post(f"/console/callbacks/{callback.id}/call")
    run_context_jobs(jobs_context)
    ring = sandbox.calls[-1]
    path = ring["status_callback"].removeprefix(PUBLIC_URL)
    if platform_of(app) == "plivo":
        form = {"CallUUID": "5a1d7c53-1b43-4c4a-9c1e-3f5e4d8b2a10", "CallStatus": "no-answer", "Direction": "outbound"}
        form |= {"From": ring["from"].lstrip("+"), "To": ring["to"].lstrip("+"), "Event": "Hangup"}
    else:
        form = {"CallSid": "CA" + "7" * 32, "CallStatus": "no-answer", "Direction": "outbound-api"}
        form |= {"From": ring["from"], "To": ring["to"]}
    assert signed_post(app.test_client(), path, form).status_code == 204
    assert attempts(app)[-1] == (True, "agent_unanswered", None, None)
    asha.post(f"/console/callbacks/{callback.id}/call")
    assert len([a for a in attempts(app) if a[0]]) == 3  # the void try did not block a new one


# -- tries by hand, the maximum, hostile input -------------------------------------------------------------


def owed(app: Flask, phone: str = CITIZEN, reason: str = "missed") -> int:
    """A callback owed to `phone`, as the queue's hang-up leaves it."""
    with session_scope(engine(app)) as session:
        callback = CallbackRequest(phone=phone, language="hi", reason=reason, due_at=NOW, created_at=NOW)
        session.add(callback)
        session.flush()
        assert callback.id is not None
        return callback.id


@pytest.mark.parametrize("telephony_platform", ["twilio"])  # the console alone: no call is placed
def test_after_three_tries_that_found_nobody_the_callback_closes_unreachable(app: Flask, clock: FrozenClock) -> None:
    callback_id = owed(app)
    asha = signed_in(app, "asha")
    asha.post(f"/console/callbacks/{callback_id}/outcome", {"outcome": "no_answer", "note": "rang out"})
    assert callbacks(app)[0].due_at == NOW + timedelta(minutes=30)
    clock.advance(timedelta(minutes=30))
    asha.post(f"/console/callbacks/{callback_id}/outcome", {"outcome": "busy", "note": "engaged"})
    row = row_of(asha, callback_id)
    assert "2 of 3" in row
    assert "Busy" in row
    assert "engaged" in row
    assert callbacks(app)[0].status is CallbackStatus.PENDING
    clock.advance(timedelta(minutes=30))
    asha.post(f"/console/callbacks/{callback_id}/outcome", {"outcome": "no_answer", "note": "again nothing"})
    [closed] = callbacks(app)
    assert (closed.status, closed.handled_at) == (CallbackStatus.UNREACHABLE, clock.now())
    assert f'id="callback-{callback_id}"' not in asha.get("/console/callbacks").get_data(as_text=True)
    after = asha.post(f"/console/callbacks/{callback_id}/outcome", {"outcome": "reached"}, follow_redirects=True)
    assert "That callback is already closed." in after.get_data(as_text=True)
    with Session(engine(app)) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "callback.attempted").order_by(col(AuditEvent.id))
        ).all()
    assert [(e.reason, e.to_status) for e in events] == [
        ("no_answer", "pending"),
        ("busy", "pending"),
        ("no_answer", "unreachable"),
    ]


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_a_wrong_number_closes_the_callback_cancelled(app: Flask) -> None:
    callback_id = owed(app)
    signed_in(app, "asha").post(f"/console/callbacks/{callback_id}/outcome", {"outcome": "wrong_number"})
    assert callbacks(app)[0].status is CallbackStatus.CANCELLED


@pytest.mark.parametrize("telephony_platform", ["twilio"])
@pytest.mark.parametrize(
    ("form", "told"),
    [
        ({"outcome": "made_up"}, "Choose how the call went"),
        ({"outcome": ""}, "Choose how the call went"),
        ({}, "Choose how the call went"),
        ({"outcome": "reached\u0000"}, "The form held characters that cannot be read."),
        ({"outcome": "REACHED"}, "Choose how the call went"),
        ({"outcome": ["no_answer", "reached"] * 50}, None),  # the first value counts, once
    ],
)
def test_a_hostile_outcome_form_changes_nothing_or_only_what_it_may(
    app: Flask, form: dict[str, object], told: str | None
) -> None:
    callback_id = owed(app)
    asha = signed_in(app, "asha")
    answer = asha.post(f"/console/callbacks/{callback_id}/outcome", form, follow_redirects=True)
    assert answer.status_code < 500
    if told is None:
        assert attempts(app) == [(False, None, CallbackOutcome.NO_ANSWER, None)]
        return
    assert told in answer.get_data(as_text=True)
    assert attempts(app) == []
    assert callbacks(app)[0].status is CallbackStatus.PENDING


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_a_note_is_kept_as_one_line_of_plain_text_within_its_width(app: Flask) -> None:
    callback_id = owed(app)
    asha = signed_in(app, "asha")
    note = "<script>alert(1)</script>\r\n\t" + "x" * 5000
    asha.post(f"/console/callbacks/{callback_id}/outcome", {"outcome": "busy", "note": note})
    [(_, _, _, kept)] = attempts(app)
    assert kept is not None
    assert len(kept) == 500
    assert kept.startswith("<script>alert(1)</script>xxx")  # control characters dropped
    row = row_of(asha, callback_id)
    assert "<script>" not in row
    assert "&lt;script&gt;" in row


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_another_agents_callback_is_theirs_and_a_missing_one_is_closed(app: Flask) -> None:
    callback_id = owed(app)
    asha, ravi = signed_in(app, "asha"), signed_in(app, "ravi", "+919811110003")
    asha.post(f"/console/callbacks/{callback_id}/take")
    assert "mine" in row_of(asha, callback_id)
    assert "asha" in row_of(ravi, callback_id)
    assert "Call now" not in row_of(ravi, callback_id)
    for action in ("take", "call", "outcome"):
        refused = ravi.post(f"/console/callbacks/{callback_id}/{action}", {"outcome": "reached"}, follow_redirects=True)
        assert "Another agent has taken that callback." in refused.get_data(as_text=True), action
    assert attempts(app) == []
    gone = asha.post("/console/callbacks/987654/outcome", {"outcome": "reached"}, follow_redirects=True)
    assert "That callback is already closed." in gone.get_data(as_text=True)
    assert asha.post("/console/callbacks/x1/take").status_code == 404
    forged = asha.client.post(f"/console/callbacks/{callback_id}/outcome", data={"outcome": "reached"})
    assert forged.status_code in (302, 400, 403)
    assert attempts(app) == []


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_an_erased_or_withheld_number_or_an_agent_without_a_phone_rings_nobody(
    app: Flask, jobs_context: context.JobContext, sandbox: TwilioSandbox
) -> None:
    erased = owed(app, phone=phones.pseudonym(CITIZEN, "k" * 32))  # erased by retention: its keyed hash
    withheld = owed(app, phone="", reason="out_of_hours")
    asha, nophone = signed_in(app, "asha"), signed_in(app, "nophone", None)
    for callback_id in (erased, withheld):
        refused = asha.post(f"/console/callbacks/{callback_id}/call", follow_redirects=True).get_data(as_text=True)
        assert "This caller&#39;s number cannot be rung: it was withheld or erased." in refused
    reachable = owed(app, phone=OTHER)
    refused = nophone.post(f"/console/callbacks/{reachable}/call", follow_redirects=True).get_data(as_text=True)
    assert "Your user has no phone number to ring" in refused
    run_context_jobs(jobs_context)
    assert sandbox.calls == []
    assert attempts(app) == []


@pytest.mark.parametrize(
    "path", ["/callback?attempt=abc", "/callback/answer?attempt=99999999999", "/callback/dialled", "/callback"]
)
def test_a_callback_call_webhook_about_no_try_answers_a_valid_document(
    app: Flask, path: str, telephony_platform: str
) -> None:
    form = call_form(telephony_platform, "c", Digits="1", DialCallStatus="completed", DialStatus="completed")
    answer = signed_post(app.test_client(), f"/{telephony_platform}/voice{path}", form)
    assert answer.status_code == 200
    assert "<Hangup" in answer.get_data(as_text=True)
    status = signed_post(app.test_client(), f"/{telephony_platform}/voice/callback/status?attempt=x", form)
    assert status.status_code == 204


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_an_erased_number_takes_its_tries_notes_with_it_and_is_rung_no_more(
    app: Flask, jobs_context: context.JobContext, sandbox: TwilioSandbox
) -> None:
    callback_id = owed(app)
    asha = signed_in(app, "asha")
    asha.post(f"/console/callbacks/{callback_id}/outcome", {"outcome": "no_answer", "note": "Sunita's son answered"})
    with session_scope(engine(app)) as session:
        retention.erase_number(session, CITIZEN, "k" * 32, retention.Counts())
    [erased] = callbacks(app)
    assert phones.is_pseudonym(erased.phone)
    assert attempts(app) == [(False, None, CallbackOutcome.NO_ANSWER, None)]
    refused = asha.post(f"/console/callbacks/{callback_id}/call", follow_redirects=True).get_data(as_text=True)
    assert "This caller&#39;s number cannot be rung: it was withheld or erased." in refused
    run_context_jobs(jobs_context)
    assert sandbox.calls == []


@pytest.mark.both_databases  # a partial unique index, in each dialect's SQL
@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_the_database_holds_one_open_missed_call_callback_per_number(app: Flask) -> None:
    owed(app)
    owed(app, reason="out_of_hours")  # another reason is another promise
    with pytest.raises(sa.exc.IntegrityError):
        owed(app)
    with session_scope(engine(app)) as session:
        session.execute(sa.update(CallbackRequest).values(status=CallbackStatus.DONE))
    owed(app)  # once it is closed, the number may be owed a new one
    assert [c.status for c in callbacks(app)] == [CallbackStatus.DONE, CallbackStatus.DONE, CallbackStatus.PENDING]
