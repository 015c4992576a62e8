"""Wrap-up codes through the console, against the real app, database and Redis: an agent's call ends,
the bar shows the wrap-up form (its code select focused), wrap-up cannot end early without a code,
the agent corrects their code until wrap-up ends and a supervisor after it; a wrap-up that runs out
is "none given". Hostile forms: an unknown code, an overlong note, another agent's call, an agent
editing after their wrap-up. Every code on the audit trail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlmodel import Session, col, select

from callcentre import desk
from core.clock import FrozenClock
from core.settings import Settings
from storage import agents
from storage.agents import AgentState
from storage.models import AgentCall, AuditEvent, Role
from tests.console import Console, add_user, page, signed_in
from tests.factories import ALWAYS_OPEN, engine_of, with_hours

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)  # 11:30 in Lucknow
ASHA, RAVI = "+919811110001", "+919811110003"  # desk phones
CALLER, OTHER_CALLER = "CA" + "1" * 32, "CA" + "2" * 32

pytestmark = pytest.mark.both_databases


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def flashed(console: Console) -> str:
    return page(console.get("/console/agent/bar")) + page(console.get("/console/queue"))


def at_desk(app: Flask, username: str, phone: str) -> tuple[Console, int]:
    user = add_user(engine_of(app), username, Role.AGENT, phone=phone)
    console = Console(app)
    console.sign_in(username)
    assert console.post("/console/agent/ready").status_code == 302
    assert user.id is not None
    return console, user.id


def talks(app: Flask, clock: FrozenClock, agent_id: int, call_sid: str, seconds: int = 95) -> AgentCall:
    """The platform puts the caller through to the agent, they talk, the desk phone hangs up (what the
    voice webhooks tell the desk: tests/integration/test_agent_desk.py drives them on each platform)."""
    runtime = app.extensions["sewamitra"]
    desk.bridged(runtime.redis, runtime.engine, agent_id, call_sid, "hi", clock.now())
    clock.advance(timedelta(seconds=seconds))
    desk.leg_ended(runtime.redis, runtime.engine, agent_id, runtime.settings.agents, clock.now())
    return the_call(app, call_sid, agent_id)


def the_call(app: Flask, call_sid: str, agent_id: int) -> AgentCall:
    with Session(engine_of(app)) as db:
        return db.exec(select(AgentCall).where(AgentCall.call_sid == call_sid, AgentCall.agent_id == agent_id)).one()


def state(app: Flask, agent_id: int) -> agents.AgentStatus:
    return agents.status(app.extensions["sewamitra"].redis, agent_id)


def codes_audited(app: Flask) -> list[tuple[str, str | None, str | None]]:
    with Session(engine_of(app)) as db:
        events = db.exec(
            select(AuditEvent).where(AuditEvent.action == "agent_call.disposed").order_by(col(AuditEvent.id))
        ).all()
    return [(e.actor, e.from_status, e.to_status) for e in events]


def refusals(app: Flask) -> int:
    with Session(engine_of(app)) as db:
        return len(db.exec(select(AuditEvent).where(AuditEvent.action == "access.refused")).all())


def test_the_call_ends_the_wrap_up_form_has_the_focus_and_wrap_up_ends_only_with_a_code(
    app: Flask, clock: FrozenClock
) -> None:
    asha, asha_id = at_desk(app, "asha", ASHA)
    call = talks(app, clock, asha_id, CALLER)
    assert (call.disposition, call.disposition_note, call.disposed_at) == (None, None, None)

    bar = page(asha.get("/console/agent/bar"))
    assert 'id="wrap-up"' in bar
    assert re.search(r'<select name="code" id="wrap-up-code" required data-focus>', bar)
    assert '<label for="wrap-up-code">Wrap-up code</label>' in bar
    assert f'name="call" value="{call.id}"' in bar
    assert "Wrap-up ends early only with a code." in bar

    # She tries to end wrap-up at once, or to leave it by Ready or a pause: refused, she is still wrapping up.
    for way_out in ("/console/agent/wrap-up/end", "/console/agent/ready", "/console/agent/pause"):
        assert asha.post(way_out, {"reason": "break"}).status_code == 302
        assert "Give the call a wrap-up code first." in flashed(asha)
        assert state(app, asha_id).state is AgentState.WRAP_UP

    # She gives "booked", then corrects it to "complaint" with a note, then ends wrap-up.
    clock.advance(timedelta(seconds=10))
    assert asha.post("/console/agent/wrap-up", {"call": call.id, "code": "booked", "then": "stay"}).status_code == 302
    assert the_call(app, CALLER, asha_id).disposition == "booked"
    assert state(app, asha_id).state is AgentState.WRAP_UP
    bar = page(asha.get("/console/agent/bar"))
    assert '<option value="booked" selected>' in bar
    form = {"call": call.id, "code": "complaint", "note": "  Water   leaks\x07 again  ", "then": "end"}
    assert asha.post("/console/agent/wrap-up", form).status_code == 302
    kept = the_call(app, CALLER, asha_id)
    assert (kept.disposition, kept.disposition_note) == ("complaint", "Water leaks again")
    assert kept.disposed_at == NOW + timedelta(seconds=105)
    assert state(app, asha_id).state is AgentState.READY
    assert codes_audited(app) == [(f"user:{asha_id}", None, "booked"), (f"user:{asha_id}", "booked", "complaint")]


def test_a_wrap_up_that_runs_out_without_a_code_is_kept_as_none_given(app: Flask, clock: FrozenClock) -> None:
    asha, asha_id = at_desk(app, "asha", ASHA)
    talks(app, clock, asha_id, CALLER)
    clock.advance(timedelta(seconds=app.extensions["sewamitra"].settings.agents.wrap_up_seconds))
    bar = page(asha.get("/console/agent/bar"))  # her console asks: the desk finds the wrap-up over

    assert state(app, asha_id).state is AgentState.READY
    assert 'id="wrap-up"' not in bar
    assert the_call(app, CALLER, asha_id).disposition == "none"
    assert codes_audited(app) == [("system", None, "none")]
    page(asha.get("/console/agent/bar"))  # asked again: nothing more
    assert codes_audited(app) == [("system", None, "none")]


def test_no_wrap_up_time_means_none_given_at_the_calls_end(app: Flask, clock: FrozenClock) -> None:
    runtime = app.extensions["sewamitra"]
    runtime.settings = runtime.settings.model_copy(
        update={"agents": runtime.settings.agents.model_copy(update={"wrap_up_seconds": 0})}
    )
    _, asha_id = at_desk(app, "asha", ASHA)
    talks(app, clock, asha_id, CALLER)
    assert state(app, asha_id).state is AgentState.READY
    assert the_call(app, CALLER, asha_id).disposition == "none"


def test_hostile_wrap_up_forms_are_refused_and_change_nothing(app: Flask, clock: FrozenClock) -> None:
    asha, asha_id = at_desk(app, "asha", ASHA)
    _, ravi_id = at_desk(app, "ravi", RAVI)
    ashas = talks(app, clock, asha_id, CALLER)
    ravis = talks(app, clock, ravi_id, OTHER_CALLER, seconds=0)

    # A code not in config.yaml, and the helpline's own "none".
    for code in ("bribe", "none", "", "Booked", "booked "):
        assert asha.post("/console/agent/wrap-up", {"call": ashas.id, "code": code}).status_code == 302
        assert "Choose a wrap-up code from the list." in flashed(asha)
    assert asha.post("/console/agent/wrap-up", {"call": ashas.id, "code": "booked\x00"}).status_code == 400
    # A note of 501 characters.
    asha.post("/console/agent/wrap-up", {"call": ashas.id, "code": "other", "note": "x" * 501})
    assert "The note is too long: at most 500 characters." in flashed(asha)
    assert the_call(app, CALLER, asha_id).disposition is None
    # Ravi's call, from Asha's console: refused and audited.
    before = refusals(app)
    assert asha.post("/console/agent/wrap-up", {"call": ravis.id, "code": "prank"}).status_code == 403
    assert refusals(app) == before + 1
    # Ids that are no call.
    for call_id in ("0", "-1", "99999", "1e3", "x" * 50, ""):
        assert asha.post("/console/agent/wrap-up", {"call": call_id, "code": "prank"}).status_code == 404
    assert the_call(app, OTHER_CALLER, ravi_id).disposition is None

    # Asha's wrap-up runs out; after it she may not change the code, a supervisor may.
    clock.advance(timedelta(seconds=120))
    asha.get("/console/agent/bar")
    assert asha.post("/console/agent/wrap-up", {"call": ashas.id, "code": "booked"}).status_code == 302
    assert "Your wrap-up of that call has ended: a supervisor can correct its code." in flashed(asha)
    assert asha.post(f"/console/calls/{ashas.id}/disposition", {"code": "booked"}).status_code == 403
    assert the_call(app, CALLER, asha_id).disposition == "none"

    boss = signed_in(app, "sunita", Role.SUPERVISOR)
    assert boss.post(f"/console/calls/{ashas.id}/disposition", {"code": "bribe"}).status_code == 303
    assert boss.post(f"/console/calls/{ashas.id}/disposition", {"code": "booked", "note": "y" * 501}).status_code == 303
    assert the_call(app, CALLER, asha_id).disposition == "none"
    assert (
        boss.post(f"/console/calls/{ashas.id}/disposition", {"code": "booked", "note": "heard it"}).status_code == 302
    )
    assert the_call(app, CALLER, asha_id).disposition == "booked"
    assert "Request booked · heard it" in page(boss.get(f"/console/calls/{ashas.id}"))
    assert codes_audited(app)[-1] == (f"user:{boss_id(app)}", "none", "booked")


def boss_id(app: Flask) -> int:
    from storage.models import User

    with Session(engine_of(app)) as db:
        found = db.exec(select(User.id).where(User.username == "sunita")).one()
    assert found is not None
    return found


def test_signing_out_in_wrap_up_keeps_none_given_but_never_overwrites_a_code(app: Flask, clock: FrozenClock) -> None:
    asha, asha_id = at_desk(app, "asha", ASHA)
    ravi, ravi_id = at_desk(app, "ravi", RAVI)
    talks(app, clock, asha_id, CALLER)
    ravis = talks(app, clock, ravi_id, OTHER_CALLER)
    assert ravi.post("/console/agent/wrap-up", {"call": ravis.id, "code": "tracked"}).status_code == 302

    asha.post("/console/sign-out")
    ravi.post("/console/sign-out")

    assert (state(app, asha_id).state, state(app, asha_id).reason) == (AgentState.PAUSED, "signed_out")
    assert the_call(app, CALLER, asha_id).disposition == "none"
    assert the_call(app, OTHER_CALLER, ravi_id).disposition == "tracked"


def test_the_wrap_up_form_reads_in_hindi(app: Flask, clock: FrozenClock) -> None:
    asha, asha_id = at_desk(app, "asha", ASHA)
    asha.post("/console/language", {"language": "hi", "back": "/console/"})
    talks(app, clock, asha_id, CALLER)
    bar = page(asha.get("/console/agent/bar"))
    assert '<label for="wrap-up-code">रैप-अप कोड</label>' in bar
    assert '<option value="booked" >अनुरोध दर्ज हुआ</option>' in bar
    assert "सहेजें और रैप-अप समाप्त करें" in bar
