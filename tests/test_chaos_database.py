"""Chaos: PostgreSQL becomes unreachable for a moment. The helpline reaches it through a TCP proxy
process that the test kills (connections refused, open ones cut) and starts again. Callers hear an
apology and wait for an agent; no webhook answers 500; a message or delivery report that comes in
meanwhile is kept and acted on when the database is back; /healthz and the console say what is
wrong instead of crashing. Real PostgreSQL, redis-server and RQ worker processes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select
from twilio.request_validator import RequestValidator

from sewamitra.app import create_app
from storage.models import Offer, RequestStatus, ServiceRequest
from storage.settings import Settings
from tests.calls import Line, call
from tests.chaos import Chaos, TcpProxy
from tests.conftest import AUTH_TOKEN, PUBLIC_URL

pytestmark = pytest.mark.slow
SORRY = "Sorry, we have a technical problem."
RAMESH, SURESH = "+919800000971", "+919800000972"


@pytest.fixture
def proxy(chaos: Chaos) -> TcpProxy:
    return chaos.proxy()


@pytest.fixture
def settings(chaos_settings: Settings, postgres: sa.Engine, proxy: TcpProxy) -> Settings:
    """The helpline (web and RQ workers) reaches PostgreSQL only through the proxy."""
    through = postgres.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return chaos_settings.model_copy(update={"database_url": through})


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


def twilio_posts(app: Flask, path: str, form: dict[str, str]) -> int:
    """Twilio posts a signed webhook; the HTTP status it got."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_URL}{path}", form)
    return app.test_client().post(path, data=form, headers={"X-Twilio-Signature": signature}).status_code


def texts(app: Flask, sender: str, body: str, sid: str) -> int:
    return twilio_posts(app, "/twilio/sms", {"MessageSid": sid, "From": sender, "To": "+18005550100", "Body": body})


def offers_of(engine: sa.Engine, request_id: int) -> list[Offer]:
    with Session(engine) as session:
        return list(session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id))).all())


def test_the_database_goes_away_as_a_caller_confirms_they_hear_sorry_and_wait_for_an_agent(
    app: Flask, proxy: TcpProxy, postgres: sa.Engine
) -> None:
    # English, a new request, a plumber, PIN code 226001; PostgreSQL becomes unreachable as the
    # caller presses 1 to confirm. The request cannot be stored, so no number is read out.
    transcript = call(app, Line("2", "1", "1", "226001#", proxy.kill, "1", "-"), caller="+919876500011")
    assert transcript.said("You keyed PIN code two, two, six, zero, zero, one, district Lucknow.")
    assert transcript.said(SORRY) and not transcript.said("Your request number is")
    assert transcript.said("To leave the queue and be called back, press 1.")  # in English, from the call state
    assert [r.status for r in transcript.requests if r.url.endswith("/twilio/voice/status")] == [204]

    # It comes back: the next caller books as if nothing happened.
    proxy.start()
    after = call(app, ["2", "1", "1", "226001#", "1"], caller="+919876500012")
    assert after.said("Your request number is:")
    with Session(postgres) as session:
        [request] = session.exec(select(ServiceRequest)).all()
    assert request.status is RequestStatus.NEW
