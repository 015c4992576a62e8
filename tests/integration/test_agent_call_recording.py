"""An agent's call recorded in the caller's conference room: the caller is told first, in their
language; each recording the platform reports is kept once; the agent on the call (and only they)
pauses and resumes it from the caller's screen, by the platform's REST API as the sandbox recorded
it; staff play the recordings on the agent call's page, each playing audited.

Both platforms run end to end (their simulators run rooms), and Twilio's recording callback and
REST requests are driven one by one too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import redis
from flask import Flask
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from callcentre import desk, recording
from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Dialed, Heard, Moved, Transcript
from devtools.twilio_sandbox import TwilioSandbox
from flows import prompts
from storage import callqueue
from storage.models import AgentCall, AuditEvent, Recording, RecordingKind, Role, User
from tests.calls import Line
from tests.console import Console, add_user, page, signed_in
from tests.factories import (
    ACCOUNT_SID,
    ALWAYS_OPEN,
    CITIZEN,
    PLIVO_AUTH_ID,
    PUBLIC_URL,
    engine_of,
    signed_post,
    simulator,
    with_hours,
)

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)  # 11:30 in Lucknow
ASHA_PHONE, RAVI_PHONE = "+919811110001", "+919811110002"  # desk phones
HINDI, ENGLISH = "1", "2"  # the greeting's language menu
TWILIO_CALL = "CA" + "7" * 32


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def at_desk(app: Flask, username: str, phone: str) -> tuple[Console, int]:
    """An agent, signed in to the console."""
    user = add_user(engine_of(app), username, Role.AGENT, phone=phone)
    console = Console(app)
    console.sign_in(username)
    assert user.id is not None
    return console, user.id


def desk_phone_answers(app: Flask, sandbox: TwilioSandbox, agent: int, caller: str) -> Transcript:
    """The platform runs the call the console placed to the agent's desk phone: the agent presses 1."""
    plivo = sandbox.name == "Plivo"
    leg = simulator(
        app.test_client(),
        direction="outbound" if plivo else "outbound-api",
        from_number="+918035350100" if plivo else "+18005550100",
        to_number=ASHA_PHONE,
        voice_path=f"/{'plivo' if plivo else 'twilio'}/voice/agent?user={agent}",
        status_path=f"/{'plivo' if plivo else 'twilio'}/voice/status",
        account_sid=PLIVO_AUTH_ID if plivo else ACCOUNT_SID,
        media_url=sandbox.base_url,
        queue_head=caller,
    )
    transcript = leg.run("1")
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def recordings_of(app: Flask, call_sid: str) -> list[Recording]:
    with Session(engine_of(app)) as db:
        return list(db.exec(select(Recording).where(Recording.call_sid == call_sid).order_by(col(Recording.id))).all())


def audited(app: Flask, *actions: str) -> list[tuple[str, str, str | None]]:
    """(action, actor, reason) of the recording's events on the audit trail, oldest first."""
    with Session(engine_of(app)) as db:
        events = db.exec(
            select(AuditEvent).where(col(AuditEvent.action).in_(actions)).order_by(col(AuditEvent.id))
        ).all()
    return [(e.action, e.actor, e.reason) for e in events]


RECORDING_EVENTS = ("agent.recording_paused", "agent.recording_resumed", "agent.recording_refused")


ROOM_RECORDING = ("room.record", "room.record.stop", "recording.update")  # Plivo's start and stop, Twilio's update


def rooms(sandbox: TwilioSandbox) -> list[tuple[str, str, str | None]]:
    """What the platform was asked about rooms' recordings: (action, room, Twilio's status asked for)."""
    asked = [r for r in sandbox.control if r["action"] in ROOM_RECORDING]
    return [(r["action"], r["room"], r["params"].get("Status")) for r in asked]


def twilio_recorded(app: Flask, agent: int, call_sid: str, sid: str, status: str = "completed") -> TestResponse:
    """Twilio's recordingStatusCallback for the room, at the URL the agent's Conference gave it."""
    form = {"AccountSid": ACCOUNT_SID, "ConferenceSid": "CF" + "1" * 32, "RecordingSid": sid}
    form |= {"RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"}
    form |= {"RecordingStatus": status, "RecordingDuration": "61", "RecordingSource": "DialConference"}
    return signed_post(app.test_client(), f"/twilio/voice/agent/recorded?agent={agent}&call={call_sid}", form)


# -- Plivo, end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("telephony_platform", ["plivo"])
@pytest.mark.parametrize(("key", "language"), [(HINDI, "hi"), (ENGLISH, "en")])
def test_on_plivo_the_caller_hears_the_call_is_recorded_in_their_language_then_the_room_is_recorded(
    app: Flask, sandbox: TwilioSandbox, redis_client: redis.Redis, key: str, language: str
) -> None:
    _asha, asha = at_desk(app, "asha", ASHA_PHONE)
    legs: list[Transcript] = []

    def asha_takes_the_call() -> None:  # "Take next caller" on the console, then the desk phone's 1
        assert callqueue.claim_next(redis_client, asha, NOW.timestamp()) is not None
        legs.append(desk_phone_answers(app, sandbox, asha, ""))

    # A language; an agent; a round of hold music; Asha takes the call; Plivo moves them to her at once.
    caller = simulator(app.test_client(), from_number=CITIZEN, moved=sandbox.moved).run(
        Line(key, "3", "-", asha_takes_the_call, "-")
    )

    assert not caller.errors, caller.render(requests=True)
    [desk_leg] = legs
    # Put through: "connecting you", "this call is recorded", in their language, then into the room.
    told = [e for e in caller.events if isinstance(e, (Heard, Dialed))]
    connecting = told.index(Heard(prompts.text("agent_connecting", language), *_voice(told, language)))
    assert told[connecting + 1 : connecting + 3] == [
        Heard(prompts.text("agent_call_recorded", language), *_voice(told, language)),
        Dialed(caller.call_sid, "conference"),
    ]
    assert Dialed(caller.call_sid, "conference") in desk_leg.events  # Asha opened the room, recorded
    assert [e.url for e in caller.events if isinstance(e, Moved)] == [f"{PUBLIC_URL}/plivo/voice/queue/connect"]
    [kept] = recordings_of(app, caller.call_sid)
    assert (kept.kind, kept.agent_id, kept.platform, kept.duration_s) == (RecordingKind.AGENT_CALL, asha, "plivo", 60)
    with Session(engine_of(app)) as db:
        assert db.exec(select(AgentCall).where(AgentCall.call_sid == caller.call_sid)).one().agent_id == asha


class TestAHelplineThatDoesNotRecord:
    @pytest.fixture
    def app_settings(self, helpline_settings: Settings) -> Settings:
        opened = with_hours(helpline_settings, **ALWAYS_OPEN)
        return opened.model_copy(update={"agents": opened.agents.model_copy(update={"record_calls": False})})

    @pytest.mark.parametrize("telephony_platform", ["plivo"])
    def test_says_nothing_of_recording_records_nothing_and_offers_no_pause(
        self, app: Flask, sandbox: TwilioSandbox, redis_client: redis.Redis
    ) -> None:
        asha_console, asha = at_desk(app, "asha", ASHA_PHONE)
        legs: list[Transcript] = []

        def asha_takes_the_call() -> None:
            assert callqueue.claim_next(redis_client, asha, NOW.timestamp()) is not None
            legs.append(desk_phone_answers(app, sandbox, asha, ""))

        caller = simulator(app.test_client(), from_number=CITIZEN).run(
            Line(ENGLISH, "3", "-", asha_takes_the_call, "-")
        )

        assert caller.said(prompts.text("agent_connecting", "en"))
        assert not caller.said(prompts.text("agent_call_recorded", "en"))
        assert Dialed(caller.call_sid, "conference") in legs[0].events
        assert recordings_of(app, caller.call_sid) == []
        screen = page(asha_console.get(f"/console/callers/call/{caller.call_sid}", follow_redirects=True))
        assert 'id="call-recording"' not in screen
        assert asha_console.post(f"/console/calls/{caller.call_sid}/recording/pause").status_code == 404
        assert rooms(sandbox) == []


def _voice(heard: list[Heard | Dialed], language: str) -> tuple[str, str]:
    """The TTS language and voice the caller heard the agent's connecting prompt in."""
    text = prompts.text("agent_connecting", language)
    return next((e.language, e.voice) for e in heard if isinstance(e, Heard) and e.text == text)


@pytest.mark.parametrize("telephony_platform", ["plivo"])
def test_on_plivo_the_agent_pauses_and_resumes_the_recording_and_each_part_is_kept_once(
    app: Flask, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    asha_console, asha = at_desk(app, "asha", ASHA_PHONE)
    ravi_console, _ravi = at_desk(app, "ravi", RAVI_PHONE)
    legs: list[Transcript] = []

    def asha_takes_the_call() -> None:
        assert callqueue.claim_next(redis_client, asha, NOW.timestamp()) is not None
        legs.append(desk_phone_answers(app, sandbox, asha, ""))

    caller = simulator(app.test_client(), from_number=CITIZEN).run(Line(ENGLISH, "3", "-", asha_takes_the_call, "-"))
    room = caller.call_sid  # Asha and the caller talk in it
    screen = page(asha_console.get(f"/console/callers/call/{room}", follow_redirects=True))
    assert 'id="pause-recording" >' in screen  # enabled: she is on the call

    # The caller starts reading a card number: Asha pauses; a second click finds it paused already.
    asha_console.post(f"/console/calls/{room}/recording/pause")
    asha_console.post(f"/console/calls/{room}/recording/pause")
    screen = page(asha_console.get(f"/console/callers/call/{room}", follow_redirects=True))
    assert 'id="resume-recording" >' in screen
    assert "What is said now is not recorded." in screen
    # Ravi, not on this call, cannot resume it: his button is disabled, and the server refuses.
    ravis = page(ravi_console.get(f"/console/callers/call/{room}", follow_redirects=True))
    assert 'id="resume-recording" disabled aria-describedby="recording-why"' in ravis
    ravi_console.post(f"/console/calls/{room}/recording/resume")
    assert rooms(sandbox) == [("room.record.stop", room, None)]
    # Done: Asha records again, a new recording of the room.
    asha_console.post(f"/console/calls/{room}/recording/resume")
    assert rooms(sandbox)[1][:2] == ("room.record", room)
    [started] = [r["params"] for r in sandbox.control if r["action"] == "room.record"]
    callback = f"{PUBLIC_URL}/plivo/voice/agent/recorded?agent={asha}&call={room}"
    assert (started["file_format"], started["callback_url"], started["callback_method"]) == ("mp3", callback, "POST")
    assert recording.is_paused(redis_client, room) is False

    # The room ends; Plivo posts the resumed part to the callback, and again (its retry).
    part = str(uuid.uuid4())
    made = {"api_id": str(uuid.uuid4()), "conference_name": room, "recording_id": part}
    made |= {"record_url": f"{sandbox.base_url}/v1/Account/{PLIVO_AUTH_ID}/Recording/{part}.mp3"}
    made |= {"recording_duration": "42", "recording_duration_ms": "42000"}
    path = callback.removeprefix(PUBLIC_URL)
    assert signed_post(app.test_client(), path, made).status_code == 204
    assert signed_post(app.test_client(), path, made).status_code == 204
    assert app.test_client().post(path, data=made | {"recording_id": str(uuid.uuid4())}).status_code == 403

    parts = recordings_of(app, room)
    assert [(r.agent_id, r.duration_s) for r in parts] == [(asha, 60), (asha, 42)]
    assert parts[1].recording_id == part
    asha_user = f"user:{asha}"
    assert audited(app, *RECORDING_EVENTS) == [
        ("agent.recording_paused", asha_user, None),
        ("agent.recording_refused", asha_user, "paused_already"),
        ("agent.recording_refused", f"user:{_ravi}", "not_on_the_call"),
        ("agent.recording_resumed", asha_user, None),
    ]


@pytest.mark.parametrize("telephony_platform", ["plivo"])
def test_staff_play_the_calls_recordings_on_its_page_each_playing_audited_and_nobody_else(
    app: Flask, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    _asha, asha = at_desk(app, "asha", ASHA_PHONE)

    def asha_takes_the_call() -> None:
        assert callqueue.claim_next(redis_client, asha, NOW.timestamp()) is not None
        desk_phone_answers(app, sandbox, asha, "")

    caller = simulator(app.test_client(), from_number=CITIZEN).run(Line(ENGLISH, "3", "-", asha_takes_the_call, "-"))
    [kept] = recordings_of(app, caller.call_sid)
    supervisor = signed_in(app, "sunita", Role.SUPERVISOR)

    with Session(engine_of(app)) as db:
        call_id = db.exec(select(AgentCall.id).where(AgentCall.call_sid == caller.call_sid)).one()
    call_page = page(supervisor.get(f"/console/calls/{call_id}"))
    audio = f"/console/calls/{call_id}/recordings/{kept.id}.mp3"
    assert f'<audio controls preload="none" src="{audio}"' in call_page  # played on the page
    assert "Asha" in call_page  # who talked to the caller
    assert f"{kept.duration_s} s" in call_page
    played = supervisor.client.get(audio)
    assert (played.status_code, played.mimetype) == (200, "audio/mpeg")
    assert played.headers["Cache-Control"] == "no-store"
    assert [r["recording_id"] for r in sandbox.recording_requests if r["method"] == "GET"] == [kept.recording_id]
    with Session(engine_of(app)) as db:
        plays = db.exec(select(AuditEvent).where(AuditEvent.action == "recording.played")).all()
    assert [(e.actor, e.entity_id) for e in plays] == [(f"user:{supervisor_id(app, 'sunita')}", kept.id)]

    add_user(engine_of(app), "agency", Role.PROVIDER, provider="Lucknow Plumbers")
    agency = Console(app)
    agency.sign_in("agency")
    assert agency.get(f"/console/calls/{call_id}").status_code == 403
    assert agency.get(audio).status_code == 403
    assert supervisor.get(f"/console/calls/{call_id}/recordings/{(kept.id or 0) + 1}.mp3").status_code == 404
    assert supervisor.get(f"/console/calls/{caller.call_sid}").status_code == 404


def supervisor_id(app: Flask, username: str) -> int:
    with Session(engine_of(app)) as db:
        found = db.exec(select(User.id).where(User.username == username)).one()
    assert found is not None
    return found


# -- Twilio: its callback, its REST requests, and end to end once it bridges in rooms ---------------


def put_through(app: Flask, connection: redis.Redis, agent: int) -> None:
    """A caller waited in Twilio's queue (the console knew them) and Twilio put them through to the agent."""
    callqueue.note_waiting(connection, callqueue.Call(TWILIO_CALL, CITIZEN, "hi", "", "", ""), 1, 0, NOW.timestamp())
    callqueue.bridged(connection, agent, TWILIO_CALL)
    desk.bridged(connection, engine_of(app), agent, TWILIO_CALL, "hi", NOW)


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_on_twilio_each_completed_recording_of_the_room_is_kept_once_whatever_the_retries(app: Flask) -> None:
    asha = add_user(engine_of(app), "asha", Role.AGENT, phone=ASHA_PHONE).id
    assert asha is not None
    sid = "RE" + "a" * 32

    assert twilio_recorded(app, asha, TWILIO_CALL, sid, status="in-progress").status_code == 204
    assert recordings_of(app, TWILIO_CALL) == []
    assert twilio_recorded(app, asha, TWILIO_CALL, sid).status_code == 204
    assert twilio_recorded(app, asha, TWILIO_CALL, sid).status_code == 204  # Twilio's retry
    assert twilio_recorded(app, asha + 99, TWILIO_CALL, "RE" + "b" * 32).status_code == 204  # no such agent
    assert twilio_recorded(app, asha, "../../etc", "RE" + "d" * 32).status_code == 204  # not a call of ours
    hostile = {"AccountSid": ACCOUNT_SID, "RecordingSid": "RE" + "e" * 32, "RecordingStatus": "completed"}
    hostile |= {"RecordingUrl": "x" * 600, "RecordingDuration": "99999999999"}
    path = f"/twilio/voice/agent/recorded?agent={asha}&call={TWILIO_CALL}"
    assert signed_post(app.test_client(), path, hostile).status_code == 204

    [kept] = recordings_of(app, TWILIO_CALL)
    assert (kept.recording_id, kept.agent_id, kept.platform, kept.duration_s) == (sid, asha, "twilio", 61)
    unsigned = app.test_client().post(
        f"/twilio/voice/agent/recorded?agent={asha}&call={TWILIO_CALL}",
        data={"AccountSid": ACCOUNT_SID, "RecordingSid": "RE" + "c" * 32, "RecordingStatus": "completed"},
    )
    assert unsigned.status_code == 403
    assert len(recordings_of(app, TWILIO_CALL)) == 1


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_on_twilio_pause_and_resume_update_the_rooms_current_recording(
    app: Flask, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    asha_console, asha = at_desk(app, "asha", ASHA_PHONE)
    put_through(app, redis_client, asha)

    asha_console.post(f"/console/calls/{TWILIO_CALL}/recording/pause")
    asha_console.post(f"/console/calls/{TWILIO_CALL}/recording/resume")

    # Each time the room in progress is found by its name, then its current recording updated.
    asked = [(r["action"], r["room"], r["params"]) for r in sandbox.control]
    assert asked == [
        ("conference.list", TWILIO_CALL, {"FriendlyName": TWILIO_CALL, "Status": "in-progress", "PageSize": "1"}),
        ("recording.update", TWILIO_CALL, {"Status": "paused", "PauseBehavior": "skip"}),
        ("conference.list", TWILIO_CALL, {"FriendlyName": TWILIO_CALL, "Status": "in-progress", "PageSize": "1"}),
        ("recording.update", TWILIO_CALL, {"Status": "in-progress"}),
    ]
    assert audited(app, *RECORDING_EVENTS) == [
        ("agent.recording_paused", f"user:{asha}", None),
        ("agent.recording_resumed", f"user:{asha}", None),
    ]


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_a_pause_the_platform_cannot_make_leaves_the_call_recorded_and_says_so(
    app: Flask, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    asha_console, asha = at_desk(app, "asha", ASHA_PHONE)
    put_through(app, redis_client, asha)
    sandbox.fail_next(1, status=404)  # Twilio finds no room of theirs in progress

    answer = asha_console.post(f"/console/calls/{TWILIO_CALL}/recording/pause", follow_redirects=True)

    assert "The telephony platform could not change the recording now. Try again." in page(answer)
    assert 'id="pause-recording" >' in page(answer)
    assert recording.is_paused(redis_client, TWILIO_CALL) is False
    assert audited(app, *RECORDING_EVENTS) == [("agent.recording_refused", f"user:{asha}", "platform")]


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_on_twilio_the_agents_call_in_the_callers_room_is_recorded_end_to_end(
    app: Flask, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    _asha, asha = at_desk(app, "asha", ASHA_PHONE)
    legs: list[Transcript] = []

    def asha_takes_the_call() -> None:
        assert callqueue.claim_next(redis_client, asha, NOW.timestamp()) is not None
        legs.append(desk_phone_answers(app, sandbox, asha, TWILIO_CALL))

    caller = simulator(app.test_client(), from_number=CITIZEN, call_sid=TWILIO_CALL, moved=sandbox.moved).run(
        Line(ENGLISH, "3", "-", asha_takes_the_call, "-")
    )
    [desk_leg] = legs
    assert Dialed(TWILIO_CALL, "conference") in desk_leg.events  # Asha opened the caller's room, recorded
    assert not caller.errors, caller.render(requests=True)
    # Moved into the room by REST: "connecting you", "this call is recorded", then the room.
    told = [e for e in caller.events if isinstance(e, (Heard, Dialed))]
    connecting = told.index(Heard(prompts.text("agent_connecting", "en"), *_voice(told, "en")))
    assert told[connecting + 1 : connecting + 3] == [
        Heard(prompts.text("agent_call_recorded", "en"), *_voice(told, "en")),
        Dialed(TWILIO_CALL, "conference"),
    ]
    assert [e.url for e in caller.events if isinstance(e, Moved)] == [f"{PUBLIC_URL}/twilio/voice/queue/connect"]
    [kept] = recordings_of(app, caller.call_sid)
    assert (kept.kind, kept.agent_id, kept.platform) == (RecordingKind.AGENT_CALL, asha, "twilio")
