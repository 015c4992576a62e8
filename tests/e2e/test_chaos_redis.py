"""Chaos: Redis (queues, call state, the worker index) dies in the middle of calls and comes back
empty. Callers on the line are told and routed, never an application error; every request a
caller heard confirmed before the outage is dispatched after it. Real redis-server and RQ worker
processes, real PostgreSQL, the Twilio sandbox for SMS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.settings import Settings
from devtools.simulator import CallSimulator, FlaskTransport, Queued
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs
from dispatch.context import JobContext
from sewamitra.app import create_app
from storage.db import session_scope
from storage.models import CallbackRequest, RequestStatus, ServiceRequest, SmsLog
from tests.calls import Line, call
from tests.chaos import Chaos, RedisServer, wait_until
from tests.factories import AUTH_TOKEN, PUBLIC_URL, add_request, add_worker, request_of

pytestmark = pytest.mark.slow
NEVER_OPEN = {"days": ()}
ENGLISH_PLUMBER_AT_226001 = ["2", "1", "1", "226001#", "1", "9"]
SORRY = "Sorry, we have a technical problem."
WORKERS = {"+919800000901": "Ramesh Kumar", "+919800000902": "Suresh Yadav"}


@pytest.fixture
def app_settings(chaos_settings: Settings) -> Settings:
    return chaos_settings


def own_redis_keys(server: RedisServer) -> list[bytes | str]:
    client = redis.Redis.from_url(server.url)
    try:
        return list(client.keys("sewamitra:*"))
    finally:
        client.close()


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
    app: Flask, own_redis: RedisServer, postgres: sa.Engine
) -> None:
    # The caller has chosen English, a new request and a plumber; Redis dies as they key their
    # PIN code. The menu goes on without it (its turns carry their session in their URLs) to the
    # first turn that must keep something, the slot picked before the address is recorded: there
    # they hear an apology in both languages and wait for an agent, told in English (the database
    # remembers their language) how to leave; pressing 1 leaves a callback.
    line = Line("2", "1", "1", own_redis.kill, "226001#", "1", "9", "1")
    transcript = call(app, line, caller="+919876500003")

    assert transcript.said("You keyed PIN code two, two, six, zero, zero, one, district Lucknow.")
    assert transcript.said(SORRY)
    assert Queued("helpline") in transcript.events
    assert transcript.said("To leave the queue and be called back, press 1.")
    assert transcript.said("Thank you. An agent will call you back soon.")
    with Session(postgres) as session:
        [callback] = session.exec(select(CallbackRequest)).all()
    assert (callback.phone, callback.reason, callback.language) == ("+919876500003", "left_queue", "en")
    assert requests_in(postgres) == []  # nobody was told a request number


def test_a_call_that_comes_in_while_redis_is_down_reaches_the_agent_queue(app: Flask, own_redis: RedisServer) -> None:
    own_redis.kill()
    transcript = call(app, Line("-", "-"), caller="+919876500004")  # listens to the hold message, hangs up
    assert transcript.said(SORRY)
    assert Queued("helpline") in transcript.events
    assert transcript.said("आप कतार में एक नंबर पर हैं।")  # a new caller: in Hindi, the helpline's first language


def test_out_of_hours_redis_dies_mid_call_and_the_caller_is_promised_a_callback(
    chaos_settings: Settings, own_redis: RedisServer, postgres: sa.Engine
) -> None:
    hours = chaos_settings.call_centre.model_copy(update=NEVER_OPEN)
    app = create_app(chaos_settings.model_copy(update={"call_centre": hours}))
    # Redis dies in the menu; the caller hears sorry at the first turn that must keep something.
    transcript = call(app, Line("2", "1", own_redis.kill, "1", "226001#", "1", "9"), caller="+919876500005")

    assert transcript.said(SORRY)
    assert Queued("helpline") not in transcript.events
    assert transcript.said("Thank you. An agent will call you back soon.")
    assert transcript.said("Thank you for calling the Sewamitra helpline.")
    assert transcript.ended_by == "app"
    # A worker the helpline rings with an offer meanwhile hears sorry and goodbye: no callback for them.
    rung = CallSimulator(
        FlaskTransport(app.test_client(), PUBLIC_URL, AUTH_TOKEN),
        public_url=PUBLIC_URL,
        direction="outbound-api",
        from_number="+18005550100",
        to_number="+919800000901",
    ).run([])
    assert rung.said(SORRY)
    assert not rung.errors
    with Session(postgres) as session:
        [callback] = session.exec(select(CallbackRequest)).all()
    assert (callback.phone, callback.reason) == ("+919876500005", "out_of_hours")
    assert callback.call_sid == transcript.call_sid
    app.extensions["sewamitra"].engine.dispose()


def test_requests_confirmed_before_redis_died_empty_are_all_dispatched_when_it_returns(
    app: Flask,
    job_context: JobContext,
    postgres: sa.Engine,
    own_redis: RedisServer,
    chaos: Chaos,
    sandbox: TwilioSandbox,
    chaos_settings: Settings,
) -> None:
    for (phone, name), km in zip(WORKERS.items(), (0.5, 1.0), strict=True):
        add_worker(postgres, name, phone, km)
    jobs.rebuild_index()
    # Two callers book a plumber and hear their request numbers; no RQ worker has run yet.
    for citizen in ("+919876500001", "+919876500002"):
        assert call(app, ENGLISH_PLUMBER_AT_226001, caller=citizen).said("Your request number is:")
    confirmed = requests_in(postgres)

    # Redis dies and comes back empty: their queued jobs, and the index of workers, are gone. An
    # RQ worker starts; the sweeper runs, as the scheduler would every sweep_interval.
    own_redis.kill()
    own_redis.start()
    chaos.worker(chaos_settings)
    time_passes(postgres)
    jobs.sweep()

    wait_until(
        lambda: RequestStatus.NEW not in {r.status for r in requests_in(postgres)},
        60,
        "the sweeper's dispatch jobs to run",
    )
    assert [r.status for r in requests_in(postgres)] == [RequestStatus.OFFERED, RequestStatus.OFFERED]
    # 6 SMS: to each citizen (first-time callers) the privacy notice's link and their number; each offer.
    texted = wait_until(lambda: len(sandbox.messages) >= 6 and sandbox.messages, 30, "the SMS to go out")
    assert texted  # wait_until returns the predicate's true value
    for request, citizen in zip(confirmed, ("+919876500001", "+919876500002"), strict=True):
        assert any(m["to"] == citizen and request.number in m["body"] for m in texted)  # its number, by SMS
        assert any(m["to"] in WORKERS and request.number in m["body"] for m in texted)  # the offer, by SMS


def test_redis_dies_under_a_busy_worker_and_the_scheduler_and_both_carry_on_by_themselves_when_it_returns(
    job_context: JobContext,
    postgres: sa.Engine,
    own_redis: RedisServer,
    chaos: Chaos,
    sandbox: TwilioSandbox,
    chaos_settings: Settings,
) -> None:
    settings = chaos_settings.model_copy(
        update={"dispatch": chaos_settings.dispatch.model_copy(update={"sweep_interval": 5})}
    )
    for (phone, name), km in zip(WORKERS.items(), (0.5, 1.0), strict=True):
        add_worker(postgres, name, phone, km)
    jobs.rebuild_index()
    worker, scheduler = chaos.worker(settings), chaos.scheduler(settings)
    wait_until(lambda: jobs.HEARTBEAT_KEY.encode() in own_redis_keys(own_redis), 60, "the scheduler's first job")

    # The worker is in the middle of texting an offer (Twilio takes 3 s) when Redis dies.
    sandbox.delay_next(1, seconds=3)
    first = add_request(postgres)
    jobs.enqueue_dispatch(first)
    wait_until(lambda: sandbox.faults_left == 0, 60, "the offer SMS to reach Twilio")
    own_redis.kill()
    wait_until(
        lambda: all(p.output().count("Redis cannot be reached") or not p.running for p in (worker, scheduler)),
        60,
        "the worker and the scheduler to meet the outage",
    )
    assert worker.running
    assert scheduler.running

    # A request stored meanwhile (its dispatch job lost); Redis comes back empty. Nobody but the
    # helpline's own processes acts: the scheduler's sweep queues it, the worker offers it.
    second = add_request(postgres, created=datetime.now(UTC) - timedelta(minutes=2))
    own_redis.start()
    wait_until(lambda: request_of(postgres, second).status is RequestStatus.OFFERED, 60, "the second request's offer")
    assert request_of(postgres, first).status is RequestStatus.OFFERED
