"""The agent queue on Plivo, which has no queue verbs: the helpline keeps the queue itself (Redis,
the list the console shows) and an agent who takes a caller is bridged to them in a conference room
named after the caller's call. Both legs are simulated by Plivo's rules, signed as Plivo signs."""

from __future__ import annotations

import time

import pytest
import redis
from flask import Flask
from sqlmodel import Session, select

from core.settings import Settings
from devtools.simulator import Bridged, Dialed, Transcript
from storage import callqueue
from storage.models import CallLog
from tests.calls import Line
from tests.factories import ALWAYS_OPEN, CITIZEN, simulator, with_hours

AGENT = 7
DESK_PHONE = "+919415000007"


@pytest.fixture
def telephony_platform() -> str:
    return "plivo"


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def agents_desk_phone_answers(app: Flask, keys: str) -> Transcript:
    """The console rang the agent's desk phone (jobs.ring_agent's call): the agent answers and keys."""
    ringing = simulator(
        app.test_client(),
        direction="outbound",
        from_number="+918035350100",
        to_number=DESK_PHONE,
        voice_path=f"/plivo/voice/agent?user={AGENT}",
        status_path="/plivo/voice/status",
    )
    return ringing.run(keys)


def test_an_agent_takes_a_caller_from_our_queue_and_both_meet_in_the_callers_room(
    app: Flask, redis_client: redis.Redis
) -> None:
    agent: list[Transcript] = []

    def agent_takes_the_call() -> None:  # "take call" on the console, then the desk phone's 1
        taken = callqueue.claim_next(redis_client, AGENT, time.time())
        assert taken is not None
        agent.append(agents_desk_phone_answers(app, "1"))

    # English; an agent; a round of hold music; the agent takes the call; another round.
    caller = simulator(app.test_client(), from_number=CITIZEN).run(Line("2", "3", "-", agent_takes_the_call, "-"))

    assert not caller.errors, caller.render(requests=True)
    [desk] = agent
    assert not desk.errors, desk.render(requests=True)
    assert desk.said("Sewamitra console: to talk to the next caller, press 1.")
    assert Dialed(caller.call_sid, "conference") in desk.events  # the agent waits in the caller's room
    assert caller.said("You are number one in the queue.")
    assert caller.said("Connecting you to an agent now.")
    assert Dialed(caller.call_sid, "conference") in caller.events
    assert Bridged() in caller.events
    assert callqueue.waiting(redis_client, time.time()) == []
    assert callqueue.on_the_line(redis_client, AGENT) == caller.call_sid
    with Session(app.extensions["sewamitra"].engine) as session:
        log = session.exec(select(CallLog).where(CallLog.call_sid == caller.call_sid)).one()
    assert log.queue_result == "bridged"
    assert log.queue_wait_s is not None  # real seconds, as the helpline counted them: a test's few
    assert 0 <= log.queue_wait_s < 60


def test_an_agent_with_nobody_waiting_hears_so(app: Flask) -> None:
    desk = agents_desk_phone_answers(app, "1")
    assert desk.said("No caller is waiting any more. Goodbye.")
    assert not [e for e in desk.events if isinstance(e, Dialed)]


def test_the_agent_who_presses_nothing_takes_nobody(app: Flask, redis_client: redis.Redis) -> None:
    caller = simulator(app.test_client(), from_number=CITIZEN).run(Line("2", "3", "-"))
    assert caller.said("You are number one in the queue.")
    desk = agents_desk_phone_answers(app, "-")
    assert not [e for e in desk.events if isinstance(e, Dialed)]
    assert callqueue.agent_waiting(redis_client, caller.call_sid) is None
