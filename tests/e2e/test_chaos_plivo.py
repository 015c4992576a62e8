"""Chaos on Plivo: Redis or PostgreSQL goes away in the middle of calls to the helpline on Plivo.
Plivo has no queue of its own, so the agent queue is the helpline's, kept in Redis: without Redis a
caller who needs an agent is promised a callback instead; without the database they wait in that
queue. Either way Plivo never gets a 500 or an unreadable document, and the hangup callback is
answered. Real redis-server, a TCP proxy in front of real PostgreSQL, the Plivo sandbox."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, select

from core.settings import Settings
from devtools.simulator import Transcript
from storage.models import CallbackRequest, ServiceRequest
from tests.calls import Line, call
from tests.chaos import Chaos, RedisServer, TcpProxy
from tests.factories import in_the_agent_queue, signed_post

pytestmark = pytest.mark.slow
SORRY = "Sorry, we have a technical problem."


@pytest.fixture
def telephony_platform() -> str:
    return "plivo"


@pytest.fixture
def proxy(chaos: Chaos) -> TcpProxy:
    return chaos.proxy()


@pytest.fixture
def app_settings(chaos_settings: Settings, postgres: sa.Engine, proxy: TcpProxy) -> Settings:
    """The helpline on Plivo, reaching PostgreSQL only through the proxy."""
    through = postgres.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return chaos_settings.model_copy(update={"database_url": through})


def hangups(transcript: Transcript) -> list[int]:
    """The statuses the helpline answered Plivo's hangup callbacks with."""
    return [r.status for r in transcript.requests if r.url.endswith("/plivo/voice/status")]


def test_redis_dies_as_a_plivo_caller_keys_their_pincode_they_hear_sorry_and_are_promised_a_callback(
    app: Flask, own_redis: RedisServer, postgres: sa.Engine
) -> None:
    # English, a new request, a plumber; Redis dies as the PIN code is keyed. The menu goes on
    # without it (its turns carry their session in their URLs) to the first turn that must keep
    # something, the slot picked before the address is recorded. The apology leads to the agent
    # queue, which on Plivo lives in Redis: it cannot hold the caller, so a callback is recorded
    # (in English: the database remembers their language) and the call ends kindly.
    transcript = call(app, Line("2", "1", "1", own_redis.kill, "226001#", "1", "9"), caller="+919876500031")

    assert transcript.said("You keyed PIN code two, two, six, zero, zero, one, district Lucknow.")
    assert transcript.said(SORRY)
    assert transcript.said("Thank you. An agent will call you back soon.")
    assert transcript.ended_by == "app"
    assert hangups(transcript) == [204]
    with Session(postgres) as session:
        [callback] = session.exec(select(CallbackRequest)).all()
        assert session.exec(select(ServiceRequest)).all() == []
    assert (callback.phone, callback.reason, callback.language) == ("+919876500031", "queue_unavailable", "en")


def test_a_plivo_call_that_comes_in_while_redis_is_down_gets_an_apology_and_a_callback(
    app: Flask, own_redis: RedisServer, postgres: sa.Engine
) -> None:
    own_redis.kill()
    transcript = call(app, Line(), caller="+919876500032")
    assert transcript.said(SORRY)
    assert transcript.said("धन्यवाद। हमारा सहायक आपको जल्द ही वापस कॉल करेगा।")  # no language known: the first
    with Session(postgres) as session:
        [callback] = session.exec(select(CallbackRequest)).all()
    assert callback.reason == "queue_unavailable"


def test_the_database_goes_away_as_a_plivo_caller_confirms_they_hear_sorry_and_wait_in_our_queue(
    app: Flask, proxy: TcpProxy, postgres: sa.Engine
) -> None:
    # English, a new request, a plumber, PIN code 226001; PostgreSQL becomes unreachable as the
    # caller presses 1 to confirm. No number is read out; the caller holds in the helpline's queue.
    transcript = call(app, Line("2", "1", "1", "226001#", proxy.kill, "1", "9", "-"), caller="+919876500033")
    assert transcript.said(SORRY)
    assert not transcript.said("Your request number is")
    assert in_the_agent_queue(transcript)
    assert transcript.said("You are number one in the queue.")
    assert transcript.said("To leave the queue and be called back, press 1.")  # in English, from the call state
    assert hangups(transcript) == [204]  # the log waits for the database in a job

    proxy.start()
    after = call(app, ["2", "1", "1", "226001#", "1", "9"], caller="+919876500034")
    assert after.said("Your request number is:")


def test_with_redis_and_the_database_down_a_plivo_sms_is_refused_with_503_not_500(
    app: Flask, proxy: TcpProxy, own_redis: RedisServer
) -> None:
    proxy.kill()
    own_redis.kill()
    form = {"MessageUUID": str(uuid.uuid4()), "From": "919800000971", "To": "918035350100", "Text": "YES"}
    answer = signed_post(app.test_client(), "/plivo/sms", form)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "60"
