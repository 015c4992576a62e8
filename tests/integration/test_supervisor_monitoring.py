"""A supervisor on the wall of agents, against the real app, database and Redis, and each platform's
rules: an agent talks with a caller in the caller's room; the supervisor presses Listen, their phone
rings, they press 1 and are in the room, heard by nobody; they whisper (Twilio: only the agent hears
them; Plivo cannot, and the wall says so) and barge (all three hear each other), each switch by the
platform's REST; their phone hangs up and the session ends. Every step on the audit trail."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask import Flask
from sqlmodel import Session, col, select

from callcentre import desk
from callcentre.rooms import room_of
from core.clock import FrozenClock
from core.settings import Settings
from devtools.rooms import Room
from devtools.simulator import Event, InRoom, Transcript
from devtools.twilio_sandbox import TwilioSandbox
from storage import callqueue, rooms
from storage.db import session_scope
from storage.models import AuditEvent, Role, User
from tests.calls import Line
from tests.console import Console, add_user, signed_in
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    PUBLIC_URL,
    call_form,
    engine_of,
    run_jobs,
    signed_post,
    simulator,
    with_hours,
)
from tests.integration.test_agent_desk import ASHA, at_desk, desk_phone_answers, offered, page, user_id

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
MEERA = "+919811110009"  # the supervisor's phone
SWITCH = re.compile(r'action="(/console/wall/monitor/[0-9a-f]+/mode)"')

pytestmark = pytest.mark.both_platforms


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def supervisor(app: Flask, username: str = "meera", phone: str | None = MEERA) -> Console:
    """A supervisor whose console (and so their phone's prompts) is in English, signed in."""
    user = add_user(engine_of(app), username, Role.SUPERVISOR, phone=phone)
    with session_scope(engine_of(app)) as db:
        row = db.get(User, user.id)
        assert row is not None
        row.language = "en"
    console = Console(app)
    console.sign_in(username)
    return console


def monitoring_trail(app: Flask) -> list[tuple[str, str, str | None, str | None, str | None]]:
    """The monitoring sessions on the audit trail: (action, actor, from, to, reason), oldest first."""
    with Session(engine_of(app)) as db:
        events = db.exec(
            select(AuditEvent).where(col(AuditEvent.action).startswith("monitor.")).order_by(col(AuditEvent.id))
        ).all()
    return [(e.action, e.actor, e.from_status, e.to_status, e.reason) for e in events]


def member_changes(sandbox: TwilioSandbox) -> list[tuple[str, str, str, dict[str, str]]]:
    """The changes of a room's member asked of the platform: (room, action, member, Twilio's form)."""
    return [
        (c["room"], c["action"], c.get("member") or c["call"], {} if c.get("member") else c["params"])
        for c in sandbox.control
        if c["action"] in ("participant.update", "member.mute", "member.mute.stop")
    ]


def supervisors_phone_answers(app: Flask, ring: dict[str, str], keys: str, **setup: object) -> Transcript:
    """The platform runs the call the helpline placed to the supervisor's phone: they answer and key."""
    outbound = "outbound" if "/plivo/" in ring["url"] else "outbound-api"
    leg = simulator(
        app.test_client(),
        direction=outbound,
        from_number=ring["from"],
        to_number=ring["to"],
        voice_path=ring["url"].removeprefix(PUBLIC_URL),
        status_path=ring["status_callback"].removeprefix(PUBLIC_URL),
        **setup,
    )
    transcript = leg.run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def test_a_supervisor_listens_whispers_and_barges_on_an_agents_call_and_each_hears_whom_the_platform_lets(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    meera = supervisor(app)
    joined: list[InRoom] = []  # each leg as it joined the room
    heard: dict[str, dict[str, set[str]]] = {}  # mode → who hears each of them
    legs: dict[str, str] = {}
    told: list[str] = []  # what the wall said to the whisper

    def in_room(event: Event) -> None:
        if isinstance(event, InRoom):
            joined.append(event)

    def asha_accepts() -> None:
        call_sid = offered(page(asha.get("/console/agent/bar")))
        assert call_sid is not None
        asha.post("/console/agent/accept", {"call": call_sid})
        run_jobs(app)
        [ring] = sandbox.calls
        leg = desk_phone_answers(app, ring, call_sid, "1")
        joined.extend(e for e in leg.events if isinstance(e, InRoom))
        legs["agent"] = leg.call_sid

    def who_hears_whom(room: str) -> dict[str, set[str]]:
        now = Room.of(room, joined, sandbox.control)
        return {who: {name for name, other in legs.items() if other in now.heard_by(sid)} for who, sid in legs.items()}

    def meera_in_the_room(room: str) -> None:  # all three are in the caller's room now
        legs["supervisor"] = joined[-1].call_id
        heard["listen"] = who_hears_whom(room)
        wall = page(meera.get("/console/wall/board"))
        assert "You are monitoring" in wall
        # Who hears her, in words, and how to stop; Asha's card does not offer her call a second time.
        assert re.search(r'id="monitoring-mode">Listen</strong>:\s*<span id="monitoring-heard">nobody hears you', wall)
        assert "Hang up your phone to stop." in wall
        assert f'id="listen-{user_id(app, "asha")}"' not in wall
        assert "You are on this call: switch above." in wall
        calls_placed = len(sandbox.calls)
        again = meera.post("/console/wall/monitor", {"agent": user_id(app, "asha"), "mode": "barge"})
        assert "You are on a monitoring call already" in page(meera.get(again.headers["Location"]))
        run_jobs(app)
        assert len(sandbox.calls) == calls_placed  # her phone, on the call, is not rung again
        switch = SWITCH.search(wall)
        assert switch is not None
        whisper = meera.post(switch.group(1), {"mode": "whisper"}, follow_redirects=True)
        heard["whisper"] = who_hears_whom(room)
        told.append(page(whisper))
        meera.post(switch.group(1), {"mode": "barge"})
        heard["barge"] = who_hears_whom(room)

    def meera_listens(room: str) -> None:  # the caller is in their room with Asha: a live call
        legs["caller"] = room
        wall = page(meera.get("/console/wall/board"))
        card = wall[wall.index(f'id="agent-{user_id(app, "asha")}"') :]
        assert "On a call" in card
        assert "हिन्दी" in card
        assert re.search(rf'id="listen-{user_id(app, "asha")}"\s*>', card)
        whisper_off = re.search(rf'id="whisper-{user_id(app, "asha")}"\s+disabled', card) is not None
        assert whisper_off == (telephony_platform == "plivo")
        assert ("Whisper is not possible on Plivo" in card) == whisper_off
        said = page(
            meera.post(
                "/console/wall/monitor", {"agent": user_id(app, "asha"), "mode": "listen"}, follow_redirects=True
            )
        )
        assert "Your phone is ringing: press 1 to join the call." in said
        run_jobs(app)
        ring = sandbox.calls[-1]
        assert ring["to"] == MEERA
        phone = supervisors_phone_answers(app, ring, "1", on_event=in_room, in_room=meera_in_the_room)
        assert phone.said("Sewamitra console: to listen to the agent's call, press 1. Nobody will hear you.")
        assert phone.said("The agent's call has ended. Goodbye.")

    # Hindi (1), an agent (3), a round of hold music; Asha accepts; the caller is moved into their room.
    line = Line("1", "3", "-", asha_accepts, "-")
    caller = simulator(
        app.test_client(), from_number=CITIZEN, moved=sandbox.moved, on_event=in_room, in_room=meera_listens
    ).run(line)
    assert not caller.errors, caller.render(requests=True)
    assert {e.call_id for e in joined} == {caller.call_sid, legs["agent"], legs["supervisor"]}  # all in one room
    assert {e.room for e in joined} == {room_of(caller.call_sid)}

    nobody: set[str] = set()
    assert heard["listen"] == {
        "caller": {"agent", "supervisor"},
        "agent": {"caller", "supervisor"},
        "supervisor": nobody,
    }
    if telephony_platform == "plivo":  # Plivo's rooms cannot coach: refused, and still listening
        assert heard["whisper"] == heard["listen"]
        assert "Whisper is not possible on Plivo" in told[0]
    else:
        assert "Switched." in told[0]
        assert re.search(r'id="monitoring-heard">only the agent hears you', told[0])
        assert heard["whisper"]["supervisor"] == {"agent"}
        assert heard["whisper"]["caller"] == {"agent", "supervisor"}
    assert heard["barge"] == {
        "caller": {"agent", "supervisor"},
        "agent": {"caller", "supervisor"},
        "supervisor": {"caller", "agent"},
    }
    meera_id = f"user:{user_id(app, 'meera')}"
    whispered = (
        ("monitor.refused", meera_id, None, "whisper", "no_coaching")
        if telephony_platform == "plivo"
        else ("monitor.switched", meera_id, "listen", "whisper", None)
    )
    assert monitoring_trail(app) == [
        ("monitor.asked", meera_id, None, "listen", None),
        ("monitor.joined", meera_id, None, "listen", None),
        whispered,
        ("monitor.switched", meera_id, "whisper" if telephony_platform == "twilio" else "listen", "barge", None),
        ("monitor.ended", meera_id, None, "barge", None),
    ]
    assert "You are monitoring" not in page(meera.get("/console/wall/board"))  # the session is over


def test_a_call_that_is_not_live_is_not_monitored_and_the_refusal_is_audited(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    at_desk(app, "asha", ASHA, "hi")  # ready, talking with nobody
    meera = supervisor(app)
    said = page(
        meera.post("/console/wall/monitor", {"agent": user_id(app, "asha"), "mode": "barge"}, follow_redirects=True)
    )
    assert "That agent is not talking with a caller now." in said
    run_jobs(app)
    assert sandbox.calls == []  # nobody's phone rang
    assert monitoring_trail(app) == [("monitor.refused", f"user:{user_id(app, 'meera')}", None, "barge", "not_live")]


def test_an_agent_may_not_see_the_wall_nor_monitor_a_colleague_and_is_refused_on_the_trail(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    at_desk(app, "asha", ASHA, "hi")
    john = signed_in(app, "john", Role.AGENT)
    assert john.get("/console/wall").status_code == 403
    assert john.get("/console/wall/board").status_code == 403
    assert john.post("/console/wall/monitor", {"agent": user_id(app, "asha"), "mode": "listen"}).status_code == 403
    run_jobs(app)
    assert sandbox.calls == []
    with Session(engine_of(app)) as db:
        refused = db.exec(select(AuditEvent).where(AuditEvent.action == "access.refused")).all()
    assert [e.detail["path"] for e in refused] == ["/console/wall", "/console/wall/board", "/console/wall/monitor"]
    assert monitoring_trail(app) == []


def test_a_supervisor_without_a_phone_is_told_and_nothing_rings(app: Flask, sandbox: TwilioSandbox) -> None:
    at_desk(app, "asha", ASHA, "hi")
    meera = supervisor(app, phone=None)
    said = page(
        meera.post("/console/wall/monitor", {"agent": user_id(app, "asha"), "mode": "listen"}, follow_redirects=True)
    )
    assert "Your profile has no phone to ring" in said
    run_jobs(app)
    assert sandbox.calls == []


def on_a_call(app: Flask, agent_id: int, *, waited_s: int, rang_s: int, agent_leg: str = "") -> callqueue.Call:
    """The agent takes a Hindi caller who has waited `waited_s`; they are put through `rang_s` later
    (the clock moved on so far), in the caller's room with their leg `agent_leg`: as the console's
    Accept, the agent's key press and the platform's bridge do it."""
    connection, engine, clock = (app.extensions["sewamitra"].redis, engine_of(app), app.extensions["sewamitra"].clock)
    caller = callqueue.Call(str(uuid.uuid4()), CITIZEN, "hi")
    callqueue.note_waiting(connection, caller, 1, waited_s, clock.now().timestamp())
    desk.ready(connection, engine, agent_id, (("hi",), ()), clock.now())
    taken, _ = desk.take(connection, engine, agent_id, None, clock.now())
    assert taken is not None
    rooms.opened(connection, room_of(caller.call_sid), caller.call_sid, agent_id, agent_leg or str(uuid.uuid4()))
    callqueue.bridged(connection, agent_id, caller.call_sid)
    desk.bridged(connection, engine, agent_id, caller.call_sid, "hi", clock.now() + timedelta(seconds=rang_s))
    return caller


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
def test_the_supervisors_phone_joins_the_callers_room_in_their_mode_and_leaves_it_running(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str, mode: str
) -> None:
    john = add_user(engine_of(app), "john", Role.AGENT).id
    assert john is not None
    agent_leg = str(uuid.uuid4()) if telephony_platform == "plivo" else "CA" + uuid.uuid4().hex
    caller = on_a_call(app, john, waited_s=40, rang_s=5, agent_leg=agent_leg)
    meera = supervisor(app)
    said = page(meera.post("/console/wall/monitor", {"agent": john, "mode": mode}, follow_redirects=True))
    run_jobs(app)
    if mode == "whisper" and telephony_platform == "plivo":
        assert "Whisper is not possible on Plivo" in said
        assert sandbox.calls == []
        return
    [ring] = sandbox.calls
    assert ring["to"] == MEERA
    assert "/voice/monitor?session=" in ring["url"]
    phone = supervisors_phone_answers(app, ring, "1")
    [joined] = [e for e in phone.events if isinstance(e, InRoom)]
    muted, coach = {"listen": (True, ""), "whisper": (False, agent_leg), "barge": (False, "")}[mode]
    assert replace(joined, member="") == InRoom(room_of(caller.call_sid), phone.call_sid, muted, coach)
    room_member = rooms.member(app.extensions["sewamitra"].redis, room_of(caller.call_sid), phone.call_sid)
    # Plivo's room callback told the helpline its member id, for a switch; Twilio names it by its CallSid
    assert room_member == (joined.member if telephony_platform == "plivo" else None)
    assert phone.said("The agent's call has ended. Goodbye.")  # once the room ends: the caller's or John's leaving
    trail = monitoring_trail(app)
    assert [action for action, *_ in trail] == ["monitor.asked", "monitor.joined", "monitor.ended"]


def test_a_switch_the_platform_refuses_keeps_the_mode_says_so_and_is_audited_and_the_next_one_goes_through(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    john = add_user(engine_of(app), "john", Role.AGENT).id
    assert john is not None
    caller = on_a_call(app, john, waited_s=40, rang_s=5)
    meera = supervisor(app)
    meera.post("/console/wall/monitor", {"agent": john, "mode": "listen"})
    run_jobs(app)
    told: list[str] = []

    def meera_in_the_room(room: str) -> None:
        switch = SWITCH.search(page(meera.get("/console/wall/board")))
        assert switch is not None
        sandbox.fail_next(1, status=429)  # the platform is busy: this one is refused
        told.append(page(meera.post(switch.group(1), {"mode": "barge"}, follow_redirects=True)))
        assert member_changes(sandbox) == []
        told.append(page(meera.post(switch.group(1), {"mode": "barge"}, follow_redirects=True)))

    leg: list[InRoom] = []
    [ring] = sandbox.calls
    supervisors_phone_answers(
        app,
        ring,
        "1",
        on_event=lambda e: leg.append(e) if isinstance(e, InRoom) else None,
        in_room=meera_in_the_room,
    )
    assert "The telephony platform refused the change; try again." in told[0]
    assert "Switched." in told[1]
    barge = (
        ("member.mute.stop", leg[0].member, {})
        if telephony_platform == "plivo"
        else ("participant.update", leg[0].call_id, {"Muted": "false", "Coaching": "false"})
    )
    assert member_changes(sandbox) == [(caller.call_sid, *barge)]
    meera_id = f"user:{user_id(app, 'meera')}"
    assert monitoring_trail(app) == [
        ("monitor.asked", meera_id, None, "listen", None),
        ("monitor.joined", meera_id, None, "listen", None),
        ("monitor.refused", meera_id, None, "barge", "platform"),
        ("monitor.switched", meera_id, "listen", "barge", None),
        ("monitor.ended", meera_id, None, "barge", None),
    ]


def test_voicemail_answering_the_supervisors_phone_joins_nobody(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox
) -> None:
    john = add_user(engine_of(app), "john", Role.AGENT).id
    assert john is not None
    on_a_call(app, john, waited_s=40, rang_s=5)
    meera = supervisor(app)
    meera.post("/console/wall/monitor", {"agent": john, "mode": "barge"})
    run_jobs(app)
    [ring] = sandbox.calls
    phone = supervisors_phone_answers(app, ring, "-")
    assert phone.said("No key was pressed, so you are not joined to the call. Goodbye.")
    assert not [e for e in phone.events if isinstance(e, InRoom)]
    assert [action for action, *_ in monitoring_trail(app)] == ["monitor.asked", "monitor.ended"]


# -- the wall ------------------------------------------------------------------------------------------


def card(wall: str, app: Flask, username: str) -> str:
    """One agent's card on the wall."""
    start = wall.index(f'id="agent-{user_id(app, username)}"')
    return wall[start : wall.index("</li>", start)]


def test_the_wall_shows_each_agent_in_their_state_with_its_time_and_the_callers_waiting_by_language(
    app: Flask, clock: FrozenClock, redis_client: redis.Redis
) -> None:
    engine = engine_of(app)
    ids: dict[str, int] = {}
    for name in ("asha", "john", "ravi"):
        made = add_user(engine, name, Role.AGENT).id
        assert made is not None
        ids[name] = made
    t0 = clock.now()
    on_a_call(app, ids["john"], waited_s=40, rang_s=5)  # John's caller: 40 s in the queue, his phone rang 5 s
    desk.ready(redis_client, engine, ids["asha"], (("hi", "en"), ()), t0 + timedelta(seconds=10))
    desk.pause(redis_client, engine, ids["ravi"], "lunch", t0 + timedelta(seconds=20))
    clock.advance(timedelta(seconds=65))
    # Two callers wait: a Hindi one served first (a repeat call) for 90 s, an English one for 30 s.
    now = clock.now().timestamp()
    callqueue.note_waiting(
        redis_client, callqueue.Call(str(uuid.uuid4()), CITIZEN, "hi", priority="repeat"), 1, 90, now
    )
    callqueue.note_waiting(redis_client, callqueue.Call(str(uuid.uuid4()), CITIZEN, "en"), 2, 30, now)

    meera = supervisor(app)
    wall = page(meera.get("/console/wall"))
    assert 'data-live="/console/wall/board"' in wall
    john = card(wall, app, "john")
    assert "On a call" in john
    assert 'data-elapsed="65"' in john  # on a call since he took her
    assert "हिन्दी" in john
    assert re.search(r'class="num waited">0:45<', john)  # 40 s in the queue, 5 s while his phone rang
    assert 'class="talked" data-elapsed="60"' in john  # put through 60 s ago
    assert re.search(r'id="listen-\d+"\s*>', john)
    asha = card(wall, app, "asha")
    assert "Ready" in asha
    assert 'data-elapsed="55"' in asha
    assert "Listen" not in asha  # nobody to listen to
    ravi = card(wall, app, "ravi")
    assert "Paused: Lunch" in ravi
    assert 'data-elapsed="45"' in ravi
    assert wall.index('id="agent-{}"'.format(ids["john"])) < wall.index('id="agent-{}"'.format(ids["asha"]))
    assert re.search(r'id="waiting-count">2<', wall)
    assert "हिन्दी: 1" in wall
    assert "English: 1" in wall
    assert 'id="longest-wait" data-elapsed="90"' in wall
    assert re.search(r'id="waiting-first">1<', wall)


@pytest.mark.parametrize("session", ["", "0" * 16, "../../etc", "x" * 500])
def test_a_supervisors_phone_webhook_about_no_session_hangs_up_politely_and_never_fails(
    app: Flask, telephony_platform: str, session: str
) -> None:
    root = f"/{telephony_platform}/voice/monitor"
    form = call_form(telephony_platform, "5", Digits="1")
    for path in (f"{root}?session={session}", f"{root}/answer?session={session}"):
        answered = signed_post(app.test_client(), path, form)
        assert answered.status_code == 200, path
        assert b"Hangup" in answered.data
        assert b"Conference" not in answered.data
    ended = signed_post(app.test_client(), f"{root}/status?session={session}", form | {"CallStatus": "completed"})
    assert ended.status_code == 204
    assert monitoring_trail(app) == []
