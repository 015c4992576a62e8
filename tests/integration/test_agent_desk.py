"""Agents at their desks, against the real app, database and Redis, and each platform's rules: a
caller who asks for an agent rings on the console of the ready agent who speaks their language, who
accepts and is put through; the call ends, wrap-up, ready again. An offer let pass pauses the agent
and goes to the next. One caller at a time, however many clicks and threads."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask import Flask
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from callcentre import desk
from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Bridged, Dialed, Transcript
from devtools.twilio_sandbox import TwilioSandbox
from storage import agents, callqueue
from storage.agents import AgentState
from storage.db import session_scope
from storage.models import AgentCall, AuditEvent, CallbackRequest, CallLog, Role, User
from tests.calls import Line
from tests.console import Console, add_user
from tests.factories import ALWAYS_OPEN, CITIZEN, PUBLIC_URL, engine_of, run_jobs, signed_post, simulator, with_hours

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)  # 11:30 in Lucknow
ASHA, JOHN, RAVI = "+919811110001", "+919811110002", "+919811110003"  # desk phones
OFFER = re.compile(r'name="call" value="([^"]+)"')
# Between two rounds of hold music an agent takes the caller: on Twilio its queue dequeues them (the
# simulator's "agent"); on Plivo the caller's next round brings them to the agent's room.
PUT_THROUGH = {"twilio": "agent", "plivo": "-"}


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def page(response: TestResponse) -> str:
    return response.get_data(as_text=True)


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

    # Hindi (1), an agent (3), a round of hold music; Asha accepts; the caller is put through.
    line = Line("1", "3", "-", asha_accepts, PUT_THROUGH[telephony_platform])
    caller = simulator(app.test_client(), from_number=CITIZEN).run(line)

    assert not caller.errors, caller.render(requests=True)
    [(ring, leg)] = desk_leg
    assert leg.said("Sewamitra console: to talk to the next caller, press 1.")
    if telephony_platform == "plivo":  # the agent waits in the caller's room; their next round joins them
        assert Dialed(caller.call_sid, "conference") in leg.events
        assert Dialed(caller.call_sid, "conference") in caller.events
    else:  # Twilio dequeues the caller to the agent's <Dial><Queue>
        assert Dialed("helpline", "queue") in leg.events
        assert Bridged() in leg.events
    assert state_of(app, "asha").state is AgentState.ON_CALL
    assert state_of(app, "asha").call_sid == caller.call_sid
    bar = page(asha.get("/console/agent/bar"))
    assert "On a call" in bar
    assert re.search(r'id="take-next"\s+disabled', bar)
    assert "You are on a call" in bar

    desk_phone_hangs_up(app, ring, leg)
    bar = page(asha.get("/console/agent/bar"))
    assert "Wrap-up" in bar
    assert "1:00" in bar  # wrap_up_seconds: 60, all left
    assert state_of(app, "asha").state is AgentState.WRAP_UP
    assert re.search(r'<select name="code" id="wrap-up-code" required data-focus>', bar)  # the wrap-up form, focused

    clock.advance(timedelta(seconds=app.extensions["sewamitra"].settings.agents.wrap_up_seconds))
    bar = page(asha.get("/console/agent/bar"))
    assert state_of(app, "asha").state is AgentState.READY
    assert not re.search(r'id="take-next"\s+disabled', bar)

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
