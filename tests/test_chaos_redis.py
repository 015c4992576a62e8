"""Chaos: Redis (queues, call state, the worker index) dies in the middle of calls and comes back
empty. Callers on the line are told and routed, never an application error; every request a
caller heard confirmed before the outage is dispatched after it. Real redis-server and RQ worker
processes, real PostgreSQL, the Twilio sandbox for SMS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from dispatch import context, jobs
from ivr.gateway import TwilioTelephony
from ivr.simulator import CallSimulator, FlaskTransport, Queued, Transcript
from ivr.twilio_sandbox import TwilioSandbox
from sewamitra.app import create_app
from storage.db import create_engine, session_scope, upgrade
from storage.models import CallbackRequest, RequestStatus, ServiceRequest, SmsLog
from storage.settings import Settings
from tests.chaos import Chaos, RedisServer, wait_until
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, make_settings
from tests.test_dispatch import add_worker

pytestmark = pytest.mark.slow
ALWAYS_OPEN = {"opens": time(0, 0), "closes": time(23, 59, 59, 999999)}
NEVER_OPEN = {"days": ()}
ENGLISH_PLUMBER_AT_226001 = ["2", "1", "1", "226001#", "1"]
SORRY = "Sorry, we have a technical problem."
WORKERS = {"+919800000901": "Ramesh Kumar", "+919800000902": "Suresh Yadav"}


class Line:
    """The caller's keys, one per prompt, with things happening on the line between them."""

    def __init__(self, *items: str | Callable[[], object]) -> None:
        self.items = list(items)

    def next_key(self) -> str | None:
        while self.items:
            item = self.items.pop(0)
            if isinstance(item, str):
                return item
            item()
        return None


@pytest.fixture
def database(postgres_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def own_redis(chaos: Chaos) -> RedisServer:
    return chaos.redis()


@pytest.fixture
def settings(tmp_path: Path, database: sa.Engine, own_redis: RedisServer, sandbox: TwilioSandbox) -> Settings:
    loaded = make_settings(
        tmp_path,
        SEWAMITRA_DATABASE_URL=database.url.render_as_string(hide_password=False),
        SEWAMITRA_REDIS_URL=own_redis.url,
        SEWAMITRA_PUBLIC_URL=PUBLIC_URL,
        SEWAMITRA_SECRET_KEY="s" * 40,
        SEWAMITRA_TWILIO__API_BASE_URL=sandbox.base_url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    return loaded.model_copy(update={"call_centre": loaded.call_centre.model_copy(update=ALWAYS_OPEN)})


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def installed(app: Flask) -> Iterator[context.JobContext]:
    """What the scheduler's jobs run with, for the sweeps and index builds this test runs itself."""
    runtime = app.extensions["sewamitra"]
    ctx = context.JobContext(runtime.settings, runtime.engine, runtime.redis, TwilioTelephony(runtime.settings))
    context.install(ctx)
    yield ctx
    context.install(None)


def call(app: Flask, keys: Line | list[str], *, caller: str) -> Transcript:
    """A citizen rings the helpline from `caller` and keys `keys`; Twilio's rules, Twilio's signatures."""
    transport = FlaskTransport(app.test_client(), PUBLIC_URL, AUTH_TOKEN)
    transcript = CallSimulator(transport, public_url=PUBLIC_URL, from_number=caller).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    assert all(r.status < 500 for r in transcript.requests), transcript.render(requests=True)
    return transcript


def requests_in(engine: sa.Engine) -> list[ServiceRequest]:
    with Session(engine) as session:
        return list(session.exec(select(ServiceRequest).order_by(col(ServiceRequest.id))).all())


def time_passes(engine: sa.Engine) -> None:
    """Two minutes go by: the sweeper's grace for a request left new is over."""
    with session_scope(engine) as session:
        earlier = datetime.now(UTC) - timedelta(minutes=2)
        session.execute(sa.update(ServiceRequest).values(created_at=earlier))
        session.execute(sa.update(SmsLog).values(created_at=earlier))


def test_redis_dies_as_a_caller_keys_their_pincode_they_hear_sorry_and_wait_for_an_agent(
    app: Flask, own_redis: RedisServer, database: sa.Engine
) -> None:
    # The caller has chosen English, a new request and a plumber; Redis dies as they key their
    # PIN code. They hear an apology in both languages and wait for an agent, told in English
    # (the database remembers their language) how to leave; pressing 1 leaves a callback.
    line = Line("2", "1", "1", own_redis.kill, "226001#", "1")
    transcript = call(app, line, caller="+919876500003")

    assert transcript.said(SORRY) and Queued("helpline") in transcript.events
    assert transcript.said("To leave the queue and be called back, press 1.")
    assert transcript.said("Thank you. An agent will call you back soon.")
    with Session(database) as session:
        [callback] = session.exec(select(CallbackRequest)).all()
    assert (callback.phone, callback.reason, callback.language) == ("+919876500003", "left_queue", "en")
    assert requests_in(database) == []  # nobody was told a request number


def test_a_call_that_comes_in_while_redis_is_down_reaches_the_agent_queue(app: Flask, own_redis: RedisServer) -> None:
    own_redis.kill()
    transcript = call(app, Line("-", "-"), caller="+919876500004")  # listens to the hold message, hangs up
    assert transcript.said(SORRY) and Queued("helpline") in transcript.events
    assert transcript.said("आप कतार में एक नंबर पर हैं।")  # a new caller: in Hindi, the helpline's first language


def test_out_of_hours_redis_dies_mid_call_and_the_caller_is_promised_a_callback(
    settings: Settings, own_redis: RedisServer, database: sa.Engine
) -> None:
    closed = settings.model_copy(update={"call_centre": settings.call_centre.model_copy(update=NEVER_OPEN)})
    transcript = call(create_app(closed), Line("2", "1", own_redis.kill, "1"), caller="+919876500005")

    assert transcript.said(SORRY) and Queued("helpline") not in transcript.events
    assert transcript.said("Thank you. An agent will call you back soon.")
    assert transcript.said("Thank you for calling the Sewamitra helpline.") and transcript.ended_by == "app"
    with Session(database) as session:
        [callback] = session.exec(select(CallbackRequest)).all()
    assert (callback.phone, callback.reason) == ("+919876500005", "out_of_hours")
    assert callback.call_sid == transcript.call_sid


def test_requests_confirmed_before_redis_died_empty_are_all_dispatched_when_it_returns(
    app: Flask, installed: context.JobContext, database: sa.Engine, own_redis: RedisServer, chaos: Chaos,
    sandbox: TwilioSandbox, settings: Settings,
) -> None:  # fmt: skip
    for (phone, name), km in zip(WORKERS.items(), (0.5, 1.0), strict=True):
        add_worker(database, name, phone, km)
    jobs.rebuild_index()
    # Two callers book a plumber and hear their request numbers; no RQ worker has run yet.
    for citizen in ("+919876500001", "+919876500002"):
        assert call(app, ENGLISH_PLUMBER_AT_226001, caller=citizen).said("Your request number is:")
    confirmed = requests_in(database)

    # Redis dies and comes back empty: their queued jobs, and the index of workers, are gone. An
    # RQ worker starts; the sweeper runs, as the scheduler would every sweep_interval.
    own_redis.kill()
    own_redis.start()
    chaos.worker(settings)
    time_passes(database)
    jobs.sweep()

    wait_until(lambda: RequestStatus.NEW not in {r.status for r in requests_in(database)}, 60,
               "the sweeper's dispatch jobs to run")  # fmt: skip
    assert [r.status for r in requests_in(database)] == [RequestStatus.OFFERED, RequestStatus.OFFERED]
    texted = wait_until(lambda: len(sandbox.messages) >= 4 and sandbox.messages, 30, "the SMS to go out")
    for request, citizen in zip(confirmed, ("+919876500001", "+919876500002"), strict=True):
        assert any(m["to"] == citizen and request.number in m["body"] for m in texted)  # its number, by SMS
        assert any(m["to"] in WORKERS and request.number in m["body"] for m in texted)  # the offer, by SMS
