"""Agents at their desks, against the real app, database and Redis, and each platform's rules: a
caller who asks for an agent rings on the console of the ready agent who speaks their language, who
accepts and is put through; the call ends, wrap-up, ready again. An offer let pass pauses the agent
and goes to the next. One caller at a time, however many clicks and threads."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask
from sqlmodel import Session, col, select

from callcentre import desk, rooms
from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Bridged, Dialed, Moved, Transcript
from devtools.twilio_sandbox import TwilioSandbox
from storage import agents, callqueue
from storage.agents import AgentState
from storage.db import session_scope
from storage.models import AgentCall, AuditEvent, CallbackRequest, CallLog, Role, User
from tests.calls import Line
from tests.console import Console, add_user, page
from tests.factories import ALWAYS_OPEN, CITIZEN, PUBLIC_URL, engine_of, run_jobs, signed_post, simulator, with_hours

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)  # 11:30 in Lucknow
ASHA, JOHN, RAVI = "+919811110001", "+919811110002", "+919811110003"  # desk phones
OFFER = re.compile(r'name="call" value="([^"]+)"')


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def at_desk(app: Flask, username: str, phone: str, languages: str | None) -> Console:
    """An agent who takes calls in `languages` signs in, and is ready."""
    user = add_user(engine_of(app), username, Role.AGENT, phone=phone)
    with session_scope(engine_of(app)) as db:
        row = db.get(User, user.id)
        assert row is not None
        row.call_languages = languages
    console = Console(app)
    console.sign_in(username)
    assert console.post("/console/agent/ready").status_code == 302
    return console


def user_id(app: Flask, username: str) -> int:
    with Session(engine_of(app)) as db:
        found = db.exec(select(User.id).where(User.username == username)).one()
    assert found is not None
    return found


def state_of(app: Flask, username: str) -> agents.AgentStatus:
    return agents.status(app.extensions["sewamitra"].redis, user_id(app, username))


def offered(bar: str) -> str | None:
    found = OFFER.search(bar)
    return found.group(1) if found else None


def desk_phone_answers(app: Flask, ring: dict[str, str], caller: str, keys: str) -> Transcript:
    """The platform runs the call to the agent's desk phone the helpline placed: the agent answers
    and keys. The simulators run one leg at a time, so its end (the status callback) is sent by
    `desk_phone_hangs_up` once the caller has been put through, as the platform would."""
    outbound = "outbound" if "plivo" in ring["url"] else "outbound-api"
    status = "/plivo/voice/status" if "plivo" in ring["url"] else "/twilio/voice/status"
    leg = simulator(
        app.test_client(),
        direction=outbound,
        from_number=ring["from"],
        to_number=ring["to"],
        voice_path=ring["url"].removeprefix(PUBLIC_URL),
        status_path=status,  # the helpline's own status URL (with ?agent=) is posted by desk_phone_hangs_up
        queue_head=caller,
    )
    transcript = leg.run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def desk_phone_hangs_up(app: Flask, ring: dict[str, str], leg: Transcript, status: str = "completed") -> None:
    """The platform's status callback for the desk phone's call, at the URL the helpline gave it."""
    path = ring["status_callback"].removeprefix(PUBLIC_URL)
    if "/plivo/" in path:
        form = {"CallUUID": leg.call_sid, "CallStatus": status, "Direction": "outbound", "Event": "Hangup"}
        form |= {"From": ring["from"].lstrip("+"), "To": ring["to"].lstrip("+"), "Duration": "60"}
    else:
        form = {"CallSid": leg.call_sid, "CallStatus": status, "Direction": "outbound-api", "CallDuration": "60"}
        form |= {"From": ring["from"], "To": ring["to"]}
    assert signed_post(app.test_client(), path, form).status_code == 204


def audited(app: Flask, username: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """The agent's desk on the audit trail: (action, from, to, reason), oldest first."""
    with Session(engine_of(app)) as db:
        events = db.exec(
            select(AuditEvent)
            .where(AuditEvent.entity == "console_user", AuditEvent.entity_id == user_id(app, username))
            .order_by(col(AuditEvent.id))
        ).all()
    return [(e.action, e.from_status, e.to_status, e.reason) for e in events]


# -- a caller, an offer, a call, wrap-up --------------------------------------------------------------


def test_a_hindi_caller_rings_on_the_hindi_agents_console_who_accepts_talks_wraps_up_and_is_ready_again(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    john = at_desk(app, "john", JOHN, "en")  # ready longer, but speaks English only
    clock.advance(timedelta(seconds=5))
    asha = at_desk(app, "asha", ASHA, "hi")
    desk_leg: list[tuple[dict[str, str], Transcript]] = []

    def asha_accepts() -> None:
        bar = page(asha.get("/console/agent/bar"))  # her console asks for its bar every few seconds
        assert "A caller is ringing for you" in bar
        assert "हिन्दी" in bar
        assert ">Ringing<" in page(john.get("/console/queue/board"))  # the live queue shows it ringing
        assert offered(page(john.get("/console/agent/bar"))) is None
        call_sid = offered(bar)
        assert call_sid is not None
        response = asha.post("/console/agent/accept", {"call": call_sid})
        assert response.headers["Location"] == f"/console/callers/call/{call_sid}"
        assert state_of(app, "asha").state is AgentState.ON_CALL
        run_jobs(app)
        [ring] = sandbox.calls
        assert ring["to"] == ASHA
        assert ring["status_callback"].endswith(f"/voice/status?agent={user_id(app, 'asha')}")
        desk_leg.append((ring, desk_phone_answers(app, ring, call_sid, "1")))

    # Hindi (1), an agent (3), a round of hold music; Asha accepts; the caller talks with her.
    line = Line("1", "3", "-", asha_accepts, "-")
    caller = simulator(app.test_client(), from_number=CITIZEN, moved=sandbox.moved).run(line)

    assert not caller.errors, caller.render(requests=True)
    [(ring, leg)] = desk_leg
    assert leg.said("Sewamitra console: to talk to the next caller, press 1.")
    # Both platforms: the agent's leg goes into the caller's room, and the caller is moved there at
    # once by REST, off their hold music (not at their next round), and hears they are put through.
    assert Dialed(caller.call_sid, "conference") in leg.events
    moved = [event for event in caller.events if isinstance(event, Moved)]
    assert [m.url for m in moved] == [f"{PUBLIC_URL}/{telephony_platform}/voice/queue/connect"]
    assert caller.events.index(moved[0]) < caller.events.index(Dialed(caller.call_sid, "conference"))
    assert caller.said("अब आपको सहायक से जोड़ा जा रहा है।")  # "Connecting you to an agent now."
    assert Bridged() in caller.events
    assert state_of(app, "asha").state is AgentState.ON_CALL
    assert state_of(app, "asha").call_sid == caller.call_sid
    bar = page(asha.get("/console/agent/bar"))
    assert "On a call" in bar
    assert re.search(r'id="take-next"\s+disabled', bar)
    assert "You are on a call" in bar
    her_screen = f'<a href="/console/callers/call/{caller.call_sid}">Open the caller&#39;s screen</a>'
    assert f'id="on-the-line">On the line: {her_screen}' in page(asha.get("/console/queue/board"))

    desk_phone_hangs_up(app, ring, leg)
    bar = page(asha.get("/console/agent/bar"))
    assert "Wrap-up" in bar
    assert "1:00" in bar  # wrap_up_seconds: 60, all left
    assert state_of(app, "asha").state is AgentState.WRAP_UP
    assert re.search(r'<select name="code" id="wrap-up-code" required data-focus>', bar)  # the wrap-up form, focused
    assert f'id="on-the-line">Your last caller: {her_screen}' in page(asha.get("/console/queue/board"))

    clock.advance(timedelta(seconds=app.extensions["sewamitra"].settings.agents.wrap_up_seconds))
    bar = page(asha.get("/console/agent/bar"))
    assert state_of(app, "asha").state is AgentState.READY
    assert not re.search(r'id="take-next"\s+disabled', bar)
    assert 'id="on-the-line"' not in page(asha.get("/console/queue/board"))  # ready: nobody on her line

    with Session(engine_of(app)) as db:
        log = db.exec(select(CallLog).where(CallLog.call_sid == caller.call_sid)).one()
        [talk] = db.exec(select(AgentCall)).all()
    assert log.queue_result == "bridged"
    assert (talk.call_sid, talk.agent_id, talk.language) == (caller.call_sid, user_id(app, "asha"), "hi")
    assert talk.answered_at == NOW + timedelta(seconds=5)
    assert talk.ended_at == talk.answered_at  # the frozen clock did not move while they talked
    assert talk.disposition == "none"  # her wrap-up ran out before she gave a code
    assert audited(app, "asha") == [
        ("agent.state_changed", "paused", "ready", None),
        ("agent.offered", "ready", "ready", None),
        ("agent.state_changed", "ready", "on_call", None),
        ("agent.state_changed", "on_call", "wrap_up", None),
        ("agent.state_changed", "wrap_up", "ready", None),
    ]
    assert [a for a in audited(app, "john") if a[0] == "agent.offered"] == []


def test_a_caller_the_platform_cannot_move_at_once_joins_their_agent_at_the_next_round_of_hold(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    desk_leg: list[Transcript] = []

    def asha_accepts_but_the_move_fails() -> None:
        call_sid = offered(page(asha.get("/console/agent/bar")))
        asha.post("/console/agent/accept", {"call": call_sid})
        run_jobs(app)
        [ring] = sandbox.calls
        sandbox.fail_next(1, status=404)  # the REST move of the caller is refused
        desk_leg.append(desk_phone_answers(app, ring, str(call_sid), "1"))

    line = Line("1", "3", "-", asha_accepts_but_the_move_fails, "-", "-")
    caller = simulator(app.test_client(), from_number=CITIZEN, moved=sandbox.moved).run(line)

    assert not caller.errors, caller.render(requests=True)
    [leg] = desk_leg
    assert Dialed(caller.call_sid, "conference") in leg.events
    assert [e for e in caller.events if isinstance(e, Moved)] == []  # nothing moved it: its hold round did
    assert Dialed(caller.call_sid, "conference") in caller.events
    assert caller.said("अब आपको सहायक से जोड़ा जा रहा है।")
    assert [c["action"] for c in sandbox.control] == []  # the refused move is not recorded
    assert sandbox.refused == 1
    assert state_of(app, "asha").bridged
    with Session(engine_of(app)) as db:
        log = db.exec(select(CallLog).where(CallLog.call_sid == caller.call_sid)).one()
        [talk] = db.exec(select(AgentCall)).all()
    assert log.queue_result == "bridged"
    assert talk.call_sid == caller.call_sid


def test_an_offer_not_accepted_in_time_pauses_the_agent_and_rings_for_the_next(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    clock.advance(timedelta(seconds=5))
    ravi = at_desk(app, "ravi", RAVI, "en,hi")
    seen: dict[str, str | None] = {}

    def asha_lets_it_ring() -> None:
        first = offered(page(asha.get("/console/agent/bar")))
        assert first is not None
        assert offered(page(ravi.get("/console/agent/bar"))) is None  # one caller, one agent
        clock.advance(timedelta(seconds=app.extensions["sewamitra"].settings.agents.offer_ring_seconds))
        bar = page(asha.get("/console/agent/bar"))
        assert offered(bar) is None
        assert "Missed a caller" in bar
        assert "paused: " in bar.lower()
        seen["ravi"] = offered(page(ravi.get("/console/agent/bar")))
        seen["first"] = first

    line = Line("1", "3", "-", asha_lets_it_ring, "hangup")
    caller = simulator(app.test_client(), from_number=CITIZEN).run(line)

    assert not caller.errors, caller.render(requests=True)
    assert seen["ravi"] == seen["first"] == caller.call_sid
    asha_now = state_of(app, "asha")
    assert (asha_now.state, asha_now.reason) == (AgentState.PAUSED, "missed")
    assert ("agent.state_changed", "ready", "paused", "missed") in audited(app, "asha")
    assert sandbox.calls == []  # nobody's desk phone rang


def test_passing_an_offer_pauses_the_agent_and_offers_the_caller_to_the_next(
    app: Flask, clock: FrozenClock, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    clock.advance(timedelta(seconds=5))
    ravi = at_desk(app, "ravi", RAVI, None)  # every language
    seen: dict[str, str | None] = {}

    def asha_passes() -> None:
        call_sid = offered(page(asha.get("/console/agent/bar")))
        assert call_sid is not None
        asha.post("/console/agent/pass", {"call": call_sid})
        seen["ravi"], seen["passed"] = offered(page(ravi.get("/console/agent/bar"))), call_sid

    simulator(app.test_client(), from_number=CITIZEN).run(Line("1", "3", "-", asha_passes, "hangup"))
    assert seen["ravi"] == seen["passed"]
    assert (state_of(app, "asha").state, state_of(app, "asha").reason) == (AgentState.PAUSED, "missed")


# -- one caller at a time --------------------------------------------------------------------------


@pytest.fixture
def three_waiting(app: Flask, clock: FrozenClock) -> list[str]:
    """Three Hindi callers in the queue, as their hold rounds note them."""
    connection, now = app.extensions["sewamitra"].redis, clock.now().timestamp()
    sids = [f"CA{n:032x}" for n in range(1, 4)]
    for position, sid in enumerate(sids, 1):
        callqueue.note_waiting(connection, callqueue.Call(sid, f"+9198765432{position:02d}", "hi"), position, 60, now)
    return sids


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_seven_clicks_on_take_next_caller_take_one_caller_and_ring_one_desk_phone(
    app: Flask, sandbox: TwilioSandbox, three_waiting: list[str]
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    answers = [asha.post("/console/queue/take") for _ in range(7)]
    taken = [r.headers["Location"] for r in answers if r.headers["Location"].startswith("/console/callers/call/")]
    assert len(taken) == 1
    run_jobs(app)
    assert [ring["to"] for ring in sandbox.calls] == [ASHA]
    claimed = [w for w in callqueue.waiting(app.extensions["sewamitra"].redis, NOW.timestamp()) if w.claimed_by]
    assert len(claimed) == 1
    refused = page(asha.get("/console/queue"))
    assert "You are on a call." in refused  # why the six other clicks took nobody


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_agents_clicking_at_once_from_many_tabs_hold_one_caller_each(
    app: Flask, clock: FrozenClock, three_waiting: list[str]
) -> None:
    """Seven threads (tabs) of each of two agents take at once, each on its own Redis connection."""
    at_desk(app, "asha", ASHA, "hi")
    at_desk(app, "ravi", RAVI, "hi")
    ids = [user_id(app, "asha"), user_id(app, "ravi")]
    url = app.extensions["sewamitra"].settings.redis_url
    results: list[tuple[int, str | None, desk.Cannot | None]] = []
    start = threading.Barrier(14)

    def click(agent: int) -> None:
        connection = redis.Redis.from_url(url)
        start.wait()
        taken, cannot = desk.take(connection, engine_of(app), agent, None, clock.now())
        results.append((agent, taken.call_sid if taken else None, cannot))
        connection.close()

    threads = [threading.Thread(target=click, args=(agent,)) for agent in ids for _ in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    won = [(agent, sid) for agent, sid, _ in results if sid]
    assert sorted(agent for agent, _ in won) == sorted(ids)  # one caller each
    assert len({sid for _, sid in won}) == 2  # never the same caller
    assert {cannot for _, sid, cannot in results if not sid} == {desk.Cannot.ON_CALL}
    connection = app.extensions["sewamitra"].redis
    claims = {w.call_sid: w.claimed_by for w in callqueue.waiting(connection, clock.now().timestamp()) if w.claimed_by}
    assert claims == {sid: agent for agent, sid in won}


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_a_paused_agent_or_one_in_wrap_up_is_refused_by_the_server_and_told_why(
    app: Flask, clock: FrozenClock, three_waiting: list[str]
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    asha.post("/console/agent/pause", {"reason": "lunch"})
    bar = page(asha.get("/console/agent/bar"))
    assert re.search(r'id="take-next"\s+disabled', bar)
    assert "Paused: Lunch" in bar
    assert asha.post("/console/queue/take").headers["Location"] == "/console/queue"
    assert "You are paused" in page(asha.get("/console/queue"))

    asha.post("/console/agent/ready")
    connection, engine = app.extensions["sewamitra"].redis, engine_of(app)
    asha_id = user_id(app, "asha")
    taken, _ = desk.take(connection, engine, asha_id, None, clock.now())
    assert taken is not None
    assert not asha.post("/console/agent/pause", {"reason": "lunch"}).headers["Location"].endswith("x")
    assert state_of(app, "asha").state is AgentState.ON_CALL  # no pausing in the middle of a call
    desk.bridged(connection, engine, asha_id, taken.call_sid, "hi", clock.now())
    desk.leg_ended(connection, engine, asha_id, app.extensions["sewamitra"].settings.agents, clock.now())
    clock.advance(timedelta(seconds=18))
    bar = page(asha.get("/console/agent/bar"))
    assert "0:42" in bar  # wrap-up: 0:42 left
    assert re.search(r'id="take-next"\s+disabled', bar)
    assert asha.post("/console/queue/take").headers["Location"] == "/console/queue"
    asha.post("/console/agent/wrap-up/end")  # no wrap-up code yet: refused, still wrapping up
    assert state_of(app, "asha").state is AgentState.WRAP_UP
    with Session(engine) as db:
        call_id = db.exec(select(AgentCall.id).where(AgentCall.call_sid == taken.call_sid)).one()
    asha.post("/console/agent/wrap-up", {"call": call_id, "code": "tracked", "then": "end"})
    assert asha.post("/console/queue/take").headers["Location"].startswith("/console/callers/call/")


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_a_desk_phone_nobody_answers_pauses_the_agent_and_frees_the_caller(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, three_waiting: list[str]
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    taken = asha.post("/console/queue/take").headers["Location"].rsplit("/", 1)[1]
    run_jobs(app)
    [ring] = sandbox.calls
    leg = Transcript(call_sid="CA" + "9" * 32)
    desk_phone_hangs_up(app, ring, leg, status="no-answer")
    assert (state_of(app, "asha").state, state_of(app, "asha").reason) == (AgentState.PAUSED, "missed")
    waiting = callqueue.waiting(app.extensions["sewamitra"].redis, NOW.timestamp())
    free = [w.call_sid for w in waiting if not w.claimed_by]
    assert taken in free


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_an_agent_whose_caller_was_never_put_through_is_not_left_on_a_call(
    app: Flask, clock: FrozenClock, three_waiting: list[str]
) -> None:
    """Asha takes a caller, then closes her browser before its leg reaches the platform (or her desk
    phone's end is never reported). Her claim runs out and the caller goes to another agent; she was
    left "on a call" with nobody, offered no caller again. Now she is paused "missed" with it."""
    runtime = app.extensions["sewamitra"]
    asha = at_desk(app, "asha", ASHA, "hi")
    taken = asha.post("/console/queue/take").headers["Location"].rsplit("/", 1)[1]

    def round_of_hold() -> list[str]:
        """The callers' hold rounds note them again and route; the callers free for an agent."""
        now = clock.now().timestamp()
        for position, sid in enumerate(three_waiting, 1):
            call = callqueue.Call(sid, f"+9198765432{position:02d}", "hi")
            callqueue.note_waiting(runtime.redis, call, position, 60, now)
        desk.route(runtime.redis, runtime.engine, runtime.settings.agents, clock.now())
        return [w.call_sid for w in callqueue.waiting(runtime.redis, now) if not w.claimed_by]

    clock.advance(timedelta(seconds=callqueue.CLAIM_TTL_S - 1))
    assert taken not in round_of_hold()
    assert (state_of(app, "asha").state, state_of(app, "asha").call_sid) == (AgentState.ON_CALL, taken)

    clock.advance(timedelta(seconds=1))
    assert taken in round_of_hold()
    assert (state_of(app, "asha").state, state_of(app, "asha").reason) == (AgentState.PAUSED, "missed")
    assert ("agent.state_changed", "on_call", "paused", "missed") in audited(app, "asha")


# -- who comes first ---------------------------------------------------------------------------------


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_a_caller_with_a_callback_due_is_offered_before_one_who_waited_longer(app: Flask, clock: FrozenClock) -> None:
    with session_scope(engine_of(app)) as db:
        db.add(CallbackRequest(phone=CITIZEN, language="hi", reason="left_queue", due_at=NOW - timedelta(minutes=5)))
    connection = app.extensions["sewamitra"].redis
    longer = callqueue.Call("CA" + "7" * 32, "+919800000077", "hi")
    callqueue.note_waiting(connection, longer, 1, 600, NOW.timestamp())  # ten minutes on hold already
    asha = at_desk(app, "asha", ASHA, "hi")
    seen: dict[str, str | None] = {}

    def offered_now() -> None:
        seen["offer"] = offered(page(asha.get("/console/agent/bar")))
        seen["board"] = page(asha.get("/console/queue/board"))

    due = simulator(app.test_client(), from_number=CITIZEN).run(Line("1", "3", "-", offered_now, "hangup"))
    assert seen["offer"] == due.call_sid
    entry = callqueue.call(connection, due.call_sid)
    assert entry is not None
    assert entry.priority == "callback_due"
    assert callqueue.call(connection, longer.call_sid) == longer  # waits on, no reason to come first
    assert str(seen["board"]).count(">First<") == 1  # the due caller, marked on the live queue as served first


# -- an agent's languages and services, set by an admin ------------------------------------------------


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_an_admin_sets_the_languages_and_services_an_agent_takes_calls_in(app: Flask) -> None:
    asha = add_user(engine_of(app), "asha", Role.AGENT, phone=ASHA)
    add_user(engine_of(app), "meera", Role.ADMIN)
    admin = Console(app)
    admin.sign_in("meera")
    form = page(admin.get(f"/console/users/{asha.id}"))
    assert "Takes calls in" in form
    assert 'name="call_services" value="plumber"' in form

    ticked = {"role": "agent", "phone": ASHA, "call_languages": ["hi"], "call_services": ["plumber", "electrician"]}
    assert admin.post(f"/console/users/{asha.id}", ticked).status_code == 302
    with Session(engine_of(app)) as db:
        row = db.get(User, asha.id)
    assert row is not None
    assert (row.call_languages, row.call_services) == ("hi", "electrician,plumber")
    shown = page(admin.get(f"/console/users/{asha.id}"))
    assert 'value="hi" checked' in shown
    assert 'value="en" checked' not in shown

    refused = admin.post(f"/console/users/{asha.id}", {**ticked, "call_services": ["astrology"]})
    assert refused.status_code == 400
    assert "Choose services from the list." in page(refused)

    desk_of_asha = Console(app)  # at Ready, her console hands her languages and services to the desk
    desk_of_asha.sign_in("asha")
    desk_of_asha.post("/console/agent/ready")
    now = agents.status(app.extensions["sewamitra"].redis, asha.id or 0)
    assert (now.state, now.languages, now.services) == (AgentState.READY, ("hi",), ("electrician", "plumber"))


@pytest.mark.parametrize("telephony_platform", ["twilio"])
def test_an_agent_who_signs_out_is_paused_and_no_caller_rings_for_them(app: Flask, three_waiting: list[str]) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    asha.post("/console/sign-out")
    now = state_of(app, "asha")
    assert (now.state, now.reason, now.offer) == (AgentState.PAUSED, "signed_out", "")
    connection = app.extensions["sewamitra"].redis
    assert desk.route(connection, engine_of(app), app.extensions["sewamitra"].settings.agents, NOW) == []
    assert agents.counts(connection)[AgentState.PAUSED] == 1
    assert ("agent.state_changed", "ready", "paused", "signed_out") in audited(app, "asha")


# -- the call's controls: hold, mute, transfer -----------------------------------------------------------


@dataclass
class Desk:
    """The agent's desk phone's call, once it rang and answered."""

    ring: dict[str, str] = field(default_factory=dict)
    leg: Transcript = field(default_factory=lambda: Transcript(call_sid=""))
    caller: str = ""


def on_the_call(
    app: Flask, sandbox: TwilioSandbox, agent: Console, *during: Callable[[Desk], None]
) -> tuple[Transcript, Desk]:
    """A Hindi caller asks for an agent; `agent` accepts and her desk phone answers; while they talk,
    each of `during` happens. Returns the caller's transcript and the agent's desk phone's call."""
    desk_phone = Desk()

    def accepts() -> None:
        call_sid = offered(page(agent.get("/console/agent/bar")))
        assert call_sid is not None
        agent.post("/console/agent/accept", {"call": call_sid})
        run_jobs(app)
        desk_phone.ring, desk_phone.caller = sandbox.calls[-1], call_sid
        desk_phone.leg = desk_phone_answers(app, desk_phone.ring, call_sid, "1")

    talk = [step for action in during for step in ("-", functools.partial(action, desk_phone))]
    line = Line("1", "3", "-", accepts, *talk, "-", "hangup")
    caller = simulator(app.test_client(), from_number=CITIZEN, moved=sandbox.moved).run(line)
    assert not caller.errors, caller.render(requests=True)
    return caller, desk_phone


def member_in_room(transcript: Transcript) -> str:
    """The member id the platform gave this call in its room (Plivo's room callback; Twilio: its CallSid)."""
    entered = [
        r.form
        for r in transcript.requests
        if urlsplit(r.url).path.endswith("/room/event") and r.form["ConferenceAction"] == "enter"
    ]
    return entered[0]["ConferenceMemberID"] if entered else transcript.call_sid


def call_audits(app: Flask) -> list[tuple[str, str, object]]:
    with Session(engine_of(app)) as db:
        events = db.exec(select(AuditEvent).where(AuditEvent.entity == "call").order_by(col(AuditEvent.id))).all()
    return [(e.action, e.actor, (e.detail or {}).get("to")) for e in events if e.action != "queue.taken"]


def test_the_agent_holds_her_caller_with_music_and_mutes_herself_and_nobody_else_can(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    ravi = at_desk(app, "ravi", RAVI, "hi")
    ravi.post("/console/agent/pause", {"reason": "lunch"})
    screens: list[str] = []

    def holds_and_mutes(desk_phone: Desk) -> None:
        call_sid = desk_phone.caller
        screen = page(asha.get(f"/console/callers/call/{call_sid}", follow_redirects=True))
        assert re.search(r'id="call-hold" aria-describedby="call-state">', screen)  # enabled
        refused = ravi.post(f"/console/calls/{call_sid}/hold", {"on": "1"})
        assert refused.status_code == 403  # ravi is not on this call
        assert "You are not on this call" in page(refused)
        assert re.search(
            r'id="call-hold"\s+disabled', page(ravi.get(f"/console/callers/call/{call_sid}", follow_redirects=True))
        )
        asha.post(f"/console/calls/{call_sid}/hold", {"on": "1"})
        asha.post(f"/console/calls/{call_sid}/mute", {"on": "1"})
        screens.append(page(asha.get(f"/console/callers/call/{call_sid}", follow_redirects=True)))
        asha.post(f"/console/calls/{call_sid}/hold", {"on": "0"})
        asha.post(f"/console/calls/{call_sid}/mute", {"on": "0"})

    caller, desk_phone = on_the_call(app, sandbox, asha, holds_and_mutes)
    leg = desk_phone.leg

    [held] = screens
    assert "The caller is on hold and hears music." in held
    assert 'id="call-resume"' in held
    assert 'id="call-unmute"' in held
    music = app.extensions["sewamitra"].settings.agents.hold_music_url
    room, them, her = caller.call_sid, member_in_room(caller), member_in_room(leg)
    done = [(c["action"], c.get("call"), c.get("member"), c["params"]) for c in sandbox.control]
    if telephony_platform == "twilio":  # Participant updates (the conference found by its room's name)
        updates = [(call, params) for action, call, _, params in done if action == "participant.update"]
        assert updates == [
            (them, {"Hold": "true", "HoldUrl": music, "HoldMethod": "GET"}),
            (her, {"Muted": "true"}),
            (them, {"Hold": "false"}),
            (her, {"Muted": "false"}),
        ]
        assert {c["room"] for c in sandbox.control if c["action"] == "conference.list"} == {room}
    else:  # Plivo: the caller made deaf, muted and played music; the agent muted; each undone
        members = [(action, member) for action, _, member, _ in done if action.startswith("member.")]
        assert members == [
            ("member.deaf", them),
            ("member.mute", them),
            ("member.play", them),
            ("member.mute", her),
            ("member.play.stop", them),
            ("member.mute.stop", them),
            ("member.deaf.stop", them),
            ("member.mute.stop", her),
        ]
        assert [p["url"] for action, _, _, p in done if action == "member.play"] == [music]
        assert {c["room"] for c in sandbox.control if c["action"].startswith("member.")} == {room}
    assert call_audits(app) == [
        ("call.held", f"user:{user_id(app, 'asha')}", None),
        ("agent.muted", f"user:{user_id(app, 'asha')}", None),
        ("call.resumed", f"user:{user_id(app, 'asha')}", None),
        ("agent.unmuted", f"user:{user_id(app, 'asha')}", None),
    ]
    assert ("access.refused",) in {(a,) for a, *_ in audited_all(app)}


def audited_all(app: Flask) -> list[tuple[str, str | None]]:
    with Session(engine_of(app)) as db:
        return [(e.action, e.actor) for e in db.exec(select(AuditEvent)).all()]


def test_an_agent_transfers_her_caller_to_another_agent_who_is_offered_them_first_with_her_name(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    clock.advance(timedelta(seconds=5))
    john = at_desk(app, "john", JOHN, "hi")  # ready longest once Asha is on her call: routing would choose him
    clock.advance(timedelta(seconds=5))
    ravi = at_desk(app, "ravi", RAVI, "en")  # speaks no Hindi, but Asha chose him
    seen: dict[str, str | None] = {}

    def sends_to_ravi(desk_phone: Desk) -> None:
        screen = page(asha.get(f"/console/callers/call/{desk_phone.caller}", follow_redirects=True))
        # Whom she may send them to, by name, with their state now (John on a break says so).
        assert f'<option value="{user_id(app, "ravi")}">Ravi · Ready</option>' in screen
        to_ravi = {"to": "agent", "agent": str(user_id(app, "ravi"))}
        assert asha.post(f"/console/calls/{desk_phone.caller}/transfer", to_ravi).status_code == 302
        card = page(asha.get(f"/console/calls/{desk_phone.caller}/controls"))
        assert "You are not on this call now: the caller has hung up, was transferred" in card
        assert "not with you yet" not in card
        assert re.search(r'id="call-hold"\s+disabled aria-describedby="call-why-not"', card)
        desk_phone_hangs_up(app, desk_phone.ring, desk_phone.leg)  # the caller left her room: it ends

    def ravi_rings(_desk_phone: Desk) -> None:
        bar = page(ravi.get("/console/agent/bar"))
        seen["ravi"], seen["john"] = offered(bar), offered(page(john.get("/console/agent/bar")))
        seen["note"] = re.sub(r"\s+", " ", bar.split('id="offer-sent-by">')[1].split("</span>")[0])

    caller, _ = on_the_call(app, sandbox, asha, sends_to_ravi, ravi_rings)

    moves = [e.url for e in caller.events if isinstance(e, Moved)]
    assert moves == [f"{PUBLIC_URL}/{telephony_platform}/voice/queue/connect"] * 2  # into the room, then back
    assert in_the_queue_again(caller)
    assert seen["ravi"] == caller.call_sid
    assert seen["john"] is None
    assert seen["note"] == "Transferred by Asha"  # her name, as the wall shows it
    assert state_of(app, "asha").state is AgentState.WRAP_UP
    assert ("call.transferred", f"user:{user_id(app, 'asha')}", "agent") in call_audits(app)


def in_the_queue_again(caller: Transcript) -> bool:
    connect = [i for i, r in enumerate(caller.requests) if r.url.endswith("/voice/queue/connect")]
    waits = [i for i, r in enumerate(caller.requests) if r.url.endswith("/voice/queue/wait")]
    return len(connect) == 2 and any(i > connect[1] for i in waits)


def test_an_agent_sends_her_caller_back_to_the_phone_menu_in_their_language(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")

    def sends_to_menu(desk_phone: Desk) -> None:
        asha.post(f"/console/calls/{desk_phone.caller}/transfer", {"to": "menu"})

    caller, _ = on_the_call(app, sandbox, asha, sends_to_menu)

    [moved_in, moved_back] = [e.url for e in caller.events if isinstance(e, Moved)]
    assert moved_in == f"{PUBLIC_URL}/{telephony_platform}/voice/queue/connect"
    assert moved_back.startswith(f"{PUBLIC_URL}/{telephony_platform}/voice/menu?sent=")
    after = caller.heard[caller.heard.index("अब आपको सहायक से जोड़ा जा रहा है।") + 1 :]
    # Told the call is recorded before the room; back at the menu, the welcome, in Hindi, as the call began.
    assert after[:2] == ["गुणवत्ता और सुरक्षा के लिए यह कॉल रिकॉर्ड की जाती है।", "सेवामित्र हेल्पलाइन में आपका स्वागत है।"]
    assert ("call.transferred", f"user:{user_id(app, 'asha')}", "menu") in call_audits(app)
    assert rooms.held_by(app.extensions["sewamitra"].redis, user_id(app, "asha"), caller.call_sid) is None


def test_a_hold_the_platform_refuses_leaves_the_call_as_it_was_and_says_so(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    said: list[str] = []

    def holds_but_the_platform_refuses(desk_phone: Desk) -> None:
        sandbox.fail_next(1, status=404)
        answer = asha.post(f"/console/calls/{desk_phone.caller}/hold", {"on": "1"}, follow_redirects=True)
        said.append(page(answer))

    caller, _ = on_the_call(app, sandbox, asha, holds_but_the_platform_refuses)

    [screen] = said
    assert "The telephony platform refused this; the call is as it was. Try again." in screen
    assert re.search(
        r'id="call-hold" aria-describedby="call-state">', screen
    )  # still Hold, not Resume: the caller was not held
    assert [c["action"] for c in sandbox.control if c["action"] not in ("call.update", "call.transfer")] == []
    assert call_audits(app) == [("call.control_failed", f"user:{user_id(app, 'asha')}", None)]
    assert caller.said("अब आपको सहायक से जोड़ा जा रहा है।")


def test_an_agent_sends_her_caller_to_the_supervisors_and_refuses_junk(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")
    clock.advance(timedelta(seconds=5))
    john = at_desk(app, "john", JOHN, "hi")
    meera = add_user(engine_of(app), "meera", Role.SUPERVISOR, phone=RAVI)
    supervisor = Console(app)
    supervisor.sign_in("meera")
    supervisor.post("/console/agent/ready")
    seen: dict[str, str | None] = {}

    def junk_then_supervisors(desk_phone: Desk) -> None:
        transfer = f"/console/calls/{desk_phone.caller}/transfer"
        assert asha.post(transfer, {"to": "astrologer"}).status_code == 400
        nobody = asha.post(transfer, {"to": "agent", "agent": "99999"}, follow_redirects=True)
        assert "No other agent to send the caller to." in page(nobody)
        assert john.post(transfer, {"to": "supervisors"}).status_code == 403  # not John's call
        assert asha.post(transfer, {"to": "supervisors"}).status_code == 302
        desk_phone_hangs_up(app, desk_phone.ring, desk_phone.leg)

    def who_rings(_desk_phone: Desk) -> None:
        seen["meera"] = offered(page(supervisor.get("/console/agent/bar")))
        seen["john"] = offered(page(john.get("/console/agent/bar")))

    caller, _ = on_the_call(app, sandbox, asha, junk_then_supervisors, who_rings)

    assert seen == {"meera": caller.call_sid, "john": None}
    [transferred] = [a for a in call_audits(app) if a[0] == "call.transferred"]
    assert transferred == ("call.transferred", f"user:{user_id(app, 'asha')}", "supervisors")
    with Session(engine_of(app)) as db:
        [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "call.transferred")).all()
    assert event.detail is not None
    assert event.detail["agents"] == [meera.id]


@pytest.mark.parametrize("telephony_platform", ["plivo"])
def test_a_plivo_hold_refused_midway_is_undone_so_the_caller_hears_their_agent(
    app: Flask, clock: FrozenClock, sandbox: TwilioSandbox
) -> None:
    asha = at_desk(app, "asha", ASHA, "hi")

    def holds_but_plivo_refuses_the_music(desk_phone: Desk) -> None:
        sandbox.fail_after(2, status=404)  # deaf and mute pass; playing the music is refused
        asha.post(f"/console/calls/{desk_phone.caller}/hold", {"on": "1"})

    caller, _ = on_the_call(app, sandbox, asha, holds_but_plivo_refuses_the_music)

    them = member_in_room(caller)
    members = [(c["action"], c["member"]) for c in sandbox.control if c["action"].startswith("member.")]
    assert members == [
        ("member.deaf", them),
        ("member.mute", them),
        ("member.mute.stop", them),  # undone, last first
        ("member.deaf.stop", them),
    ]
    assert call_audits(app) == [("call.control_failed", f"user:{user_id(app, 'asha')}", None)]
