"""An agent answering in the browser: they accept a caller on the console; their softphone calls the
platform with the caller named; the platform asks the helpline for that leg (Twilio: the TwiML App's
Voice URL, `From=client:agent-<id>`, the SDK's params as form fields; Plivo: the browser
application's answer URL, `From=sip:agent-<id>@phone.plivo.com`, the SDK's extra headers as
`X-PH-` parameters), signed as each platform signs; the leg joins the caller's room as a desk
phone's does, the caller is moved in at once by REST, and the agent holds and mutes from the
caller's screen. A leg for a caller the agent does not hold is refused. The leg's end ends the
agent's call, as a desk phone's does."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask
from sqlmodel import Session, col, select

from callcentre.rooms import room_of
from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Bridged, Dialed, Moved, Transcript, as_account
from devtools.twilio_sandbox import TwilioSandbox
from storage import agents, callqueue, rooms
from storage.agents import AgentState
from storage.models import AgentCall, AuditEvent, CallLog, Role
from tests.calls import Line
from tests.console import Console, add_user
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    PUBLIC_URL,
    engine_of,
    run_jobs,
    signed_post,
    simulator,
    with_browser_phones,
    with_hours,
)

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
OFFER = re.compile(r'name="call" value="([^"]+)"')

pytestmark = pytest.mark.both_platforms


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_browser_phones(with_hours(helpline_settings, **ALWAYS_OPEN))


def in_the_browser(app: Flask, username: str) -> tuple[Console, int]:
    """An agent with no desk phone signs in, answers in the browser (the default here), and is ready."""
    user = add_user(engine_of(app), username, Role.AGENT)
    console = Console(app)
    console.sign_in(username)
    assert console.post("/console/agent/answer-in", {"answer_in": "browser"}).status_code == 302
    assert console.post("/console/agent/ready").status_code == 302
    assert user.id is not None
    return console, user.id


def browser_leg(platform: str, agent_id: int, caller_call: str) -> tuple[str, dict[str, str]]:
    """The platform's request for the call the agent's softphone placed, exactly as it sends it."""
    if platform == "plivo":
        form = {"CallUUID": str(uuid.uuid4()), "From": f"sip:agent-{agent_id}@phone.plivo.com"}
        form |= {"To": "sip:helpline@phone.plivo.com", "CallStatus": "in-progress", "Direction": "inbound"}
        form |= {"Event": "StartApp", "X-PH-Call": caller_call}
        return "/plivo/voice/client", form
    form = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": "AC0123456789abcdef0123456789abcdef"}
    form |= {"From": f"client:agent-{agent_id}", "Caller": f"client:agent-{agent_id}", "To": "", "Called": ""}
    form |= {"CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
    form |= {"ApplicationSid": "AP" + "a" * 32, "call": caller_call}
    return "/twilio/voice/client", form


def leg_ends(app: Flask, platform: str, leg: dict[str, str]) -> None:
    """The leg's status callback (the TwiML App's; the application's hangup URL), for the helpline's account."""
    ended = as_account({**leg, "CallStatus": "completed"}, app.extensions["sewamitra"].settings.twilio.account_sid)
    if platform == "plivo":
        ended |= {"Event": "Hangup", "HangupCause": "NORMAL_CLEARING", "Duration": "42"}
    else:
        ended |= {"CallDuration": "42"}
    assert signed_post(app.test_client(), f"/{platform}/voice/client/status", ended).status_code == 204


def refusals(app: Flask) -> list[AuditEvent]:
    with Session(engine_of(app)) as db:
        found = select(AuditEvent).where(AuditEvent.action == "softphone.leg_refused").order_by(col(AuditEvent.id))
        return list(db.exec(found))


def browser_connects(app: Flask, platform: str, agent_id: int, caller_call: str) -> Transcript:
    """The platform runs the call the agent's softphone placed, as it runs it, signed: its Voice URL
    (Twilio's TwiML App: `From=client:agent-<id>`, the SDK's `params`) or answer URL (Plivo's browser
    application: `From=sip:agent-<id>@phone.plivo.com`, the `X-PH-` header), then the room it is put in.
    The simulators run one leg at a time: the browser's talk here, the caller's on its own transcript."""
    if platform == "plivo":
        browser, helpline = f"sip:agent-{agent_id}@phone.plivo.com", "sip:helpline@phone.plivo.com"
        params = {"X-PH-Call": caller_call}
    else:
        browser, helpline, params = f"client:agent-{agent_id}", "", {"call": caller_call}
    placed = simulator(
        app.test_client(),
        voice_path=f"/{platform}/voice/client",
        from_number=browser,
        to_number=helpline,
        connect_params=params,
    )
    leg = placed.run("")
    assert not leg.errors, leg.render(requests=True)
    return leg


def member_of(leg: Transcript) -> str:
    """The platform's name of the leg in its room: Plivo's ConferenceMemberID (its room callback), Twilio's CallSid."""
    entered = [
        r.form
        for r in leg.requests
        if urlsplit(r.url).path.endswith("/room/event") and r.form["ConferenceAction"] == "enter"
    ]
    return entered[0]["ConferenceMemberID"] if entered else leg.call_sid


def test_an_agent_accepts_in_the_browser_her_leg_joins_the_callers_room_and_the_caller_is_moved_in_at_once(
    app: Flask, redis_client: redis.Redis, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    asha, asha_id = in_the_browser(app, "asha")
    browser: list[Transcript] = []
    opened: list[rooms.Room | None] = []
    taken: list[str] = []

    def asha_accepts_and_her_browser_connects() -> None:
        bar = asha.get("/console/agent/bar").get_data(as_text=True)
        offer = OFFER.search(bar)
        assert offer is not None
        response = asha.post("/console/agent/accept", {"call": offer.group(1)})
        assert response.headers["Location"] == f"/console/callers/call/{offer.group(1)}"
        run_jobs(app)
        assert sandbox.calls == []  # no desk phone rung
        bar = asha.get("/console/agent/bar").get_data(as_text=True)
        assert f'data-softphone-call="{offer.group(1)}"' in bar  # the softphone connects to this caller
        taken.append(offer.group(1))
        browser.append(browser_connects(app, telephony_platform, asha_id, offer.group(1)))
        opened.append(rooms.of(redis_client, room_of(offer.group(1))))

    def asha_holds_and_mutes_from_the_callers_screen() -> None:
        [call_sid] = taken
        screen = asha.get(f"/console/callers/call/{call_sid}", follow_redirects=True).get_data(as_text=True)
        assert re.search(r'id="call-hold" aria-describedby="call-state">', screen)  # enabled: she is in the room
        for control in ("hold", "mute"):
            for on in ("1", "0"):
                assert asha.post(f"/console/calls/{call_sid}/{control}", {"on": on}).status_code == 302

    # English (2), an agent (3), a round of hold music; Asha accepts in her browser, which connects;
    # the caller talks with her; she holds them and mutes herself, and back; they talk; the caller hangs up.
    line = Line(
        "2", "3", "-", asha_accepts_and_her_browser_connects, "-", asha_holds_and_mutes_from_the_callers_screen, "-"
    )
    caller = simulator(app.test_client(), from_number=CITIZEN, moved=sandbox.moved).run(line)

    assert not caller.errors, caller.render(requests=True)
    [leg] = browser
    [placed] = leg.requests[:1]
    assert placed.url == f"{PUBLIC_URL}/{telephony_platform}/voice/client"
    assert placed.form["From"] in (f"client:agent-{asha_id}", f"sip:agent-{asha_id}@phone.plivo.com")
    # The browser's leg goes into the caller's room, as a desk phone's does; the caller is moved there
    # at once by REST, off their hold music (not at their next round), and hears they are put through.
    assert Dialed(caller.call_sid, "conference") in leg.events
    moved = [event for event in caller.events if isinstance(event, Moved)]
    assert [m.url for m in moved] == [f"{PUBLIC_URL}/{telephony_platform}/voice/queue/connect"]
    assert caller.events.index(moved[0]) < caller.events.index(Dialed(caller.call_sid, "conference"))
    assert caller.said("Connecting you to an agent now.")
    assert Bridged() in caller.events  # both in the room
    assert Bridged() in leg.events
    # The room as conf keeps it for a desk phone: the caller, the agent, and her leg (the browser's call).
    assert opened == [rooms.Room(room_of(caller.call_sid), caller.call_sid, asha_id, leg.call_sid)]
    # Hold and mute reach the platform for the browser's agent as for a desk phone's.
    done = [(c["action"], c.get("call"), c.get("member")) for c in sandbox.control]
    if telephony_platform == "twilio":  # Participant updates: the caller held, Asha's browser leg muted
        updates = [call for action, call, _ in done if action == "participant.update"]
        assert updates == [caller.call_sid, caller.call_sid, leg.call_sid, leg.call_sid]
    else:  # Plivo names members by the ids its room callback gave: the caller's, and the browser leg's
        muted = [member for action, _, member in done if action in ("member.mute", "member.mute.stop")]
        assert muted[-2:] == [member_of(leg)] * 2
        assert member_of(leg) != leg.call_sid
    with Session(engine_of(app)) as db:
        log = db.exec(select(CallLog).where(CallLog.call_sid == caller.call_sid)).one()
        [talk] = db.exec(select(AgentCall)).all()
    assert log.queue_result == "bridged"
    assert (talk.call_sid, talk.agent_id) == (caller.call_sid, asha_id)
    assert refusals(app) == []

    leg_ends(app, telephony_platform, placed.form)
    assert agents.status(redis_client, asha_id).state is AgentState.WRAP_UP  # they talked: wrap-up


def test_a_browser_leg_for_a_caller_its_agent_does_not_hold_is_refused(
    app: Flask, redis_client: redis.Redis, telephony_platform: str
) -> None:
    asha, asha_id = in_the_browser(app, "asha")
    ravi, ravi_id = in_the_browser(app, "ravi")
    taken: list[str] = []

    def asha_accepts_then_ravis_browser_asks_for_her_caller() -> None:
        offer = OFFER.search(asha.get("/console/agent/bar").get_data(as_text=True)) or OFFER.search(
            ravi.get("/console/agent/bar").get_data(as_text=True)
        )
        assert offer is not None
        holder = asha if OFFER.search(asha.get("/console/agent/bar").get_data(as_text=True)) else ravi
        holder.post("/console/agent/accept", {"call": offer.group(1)})
        taken.append(offer.group(1))
        other = ravi_id if holder is asha else asha_id
        path, form = browser_leg(telephony_platform, other, offer.group(1))
        answer = signed_post(app.test_client(), path, form)
        assert answer.status_code == 200
        document = answer.get_data(as_text=True)
        assert "Conference" not in document
        assert "Hangup" in document
        assert callqueue.agent_waiting(redis_client, offer.group(1)) is None

    caller = simulator(app.test_client(), from_number=CITIZEN).run(
        Line("2", "3", "-", asha_accepts_then_ravis_browser_asks_for_her_caller)
    )

    assert not caller.errors, caller.render(requests=True)
    [refused] = refusals(app)
    assert refused.reason == "the agent does not hold that caller"
    assert refused.detail["call_sid"] == taken[0]


def test_a_browser_leg_not_signed_by_the_platform_is_refused(app: Flask, telephony_platform: str) -> None:
    _, asha_id = in_the_browser(app, "asha")
    path, form = browser_leg(telephony_platform, asha_id, "CA" + "0" * 32)

    answer = app.test_client().post(path, data=form)  # no signature

    assert answer.status_code == 403
    assert refusals(app) == []


def test_a_browser_leg_that_is_no_agents_is_refused(app: Flask, telephony_platform: str) -> None:
    path, form = browser_leg(telephony_platform, 1, "CA" + "0" * 32)
    form["From"] = "+919876543210" if telephony_platform == "twilio" else "919876543210"  # a phone, not a browser

    answer = signed_post(app.test_client(), path, form)

    assert answer.status_code == 200
    assert "Conference" not in answer.get_data(as_text=True)
    [refused] = refusals(app)
    assert refused.actor == "anonymous"


def test_a_browser_that_could_not_reach_the_platform_frees_the_caller(app: Flask, redis_client: redis.Redis) -> None:
    asha, asha_id = in_the_browser(app, "asha")
    holding: list[str] = []

    def asha_accepts_and_her_browser_gives_up() -> None:
        offer = OFFER.search(asha.get("/console/agent/bar").get_data(as_text=True))
        assert offer is not None
        asha.post("/console/agent/accept", {"call": offer.group(1)})
        holding.append(offer.group(1))
        # No microphone, or the platform out of reach: softphone.js says so to the helpline.
        assert asha.post("/console/agent/leg-failed", {"call": offer.group(1)}).get_json() == {"ended": True}

    caller = simulator(app.test_client(), from_number=CITIZEN).run(
        Line("2", "3", "-", asha_accepts_and_her_browser_gives_up)
    )

    assert not caller.errors, caller.render(requests=True)
    after = agents.status(redis_client, asha_id)
    assert (after.state, after.reason) == (AgentState.PAUSED, "missed")
    assert callqueue.claimed_by(redis_client, asha_id, NOW.timestamp()) is None
    # A second report of the same failure changes nothing.
    assert asha.post("/console/agent/leg-failed", {"call": holding[0]}).get_json() == {"ended": False}


def test_an_agent_who_chooses_the_desk_phone_has_it_rung_as_before(app: Flask, sandbox: TwilioSandbox) -> None:
    user = add_user(engine_of(app), "john", Role.AGENT, phone="+919811110002")
    john = Console(app)
    john.sign_in("john")
    assert john.post("/console/agent/answer-in", {"answer_in": "desk_phone"}).status_code == 302
    assert john.post("/console/agent/ready").status_code == 302
    rung: list[dict[str, str]] = []

    def john_accepts() -> None:
        offer = OFFER.search(john.get("/console/agent/bar").get_data(as_text=True))
        assert offer is not None
        john.post("/console/agent/accept", {"call": offer.group(1)})
        assert "data-softphone-call" not in john.get("/console/agent/bar").get_data(as_text=True)
        run_jobs(app)
        rung.extend(sandbox.calls)

    caller = simulator(app.test_client(), from_number=CITIZEN).run(Line("2", "3", "-", john_accepts))

    assert not caller.errors, caller.render(requests=True)
    [ring] = rung
    assert ring["to"] == "+919811110002"
    assert ring["status_callback"].endswith(f"/voice/status?agent={user.id}")


def test_an_answer_choice_that_is_not_one_changes_nothing(app: Flask) -> None:
    asha, _ = in_the_browser(app, "asha")

    assert asha.post("/console/agent/answer-in", {"answer_in": "carrier pigeon"}).status_code == 302
    assert 'id="softphone"' in asha.get("/console/queue").get_data(as_text=True)  # still in the browser
