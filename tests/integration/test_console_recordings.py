"""The spoken address on the console's request page: an audio player whose source is the helpline's
own route, which fetches the recording from the platform's sandbox with the platform's credentials.
The staff and the agency whose worker has the job hear it; anyone else gets 403, audited; each
playing is audited too."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.settings import Settings
from devtools.twilio_sandbox import RECORDING_AUDIO, TwilioSandbox
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AuditEvent, Recording, RequestStatus, Role, ServiceRequest, User, Worker
from tests.console import Console, add_user
from tests.factories import (
    ACCOUNT_SID,
    ALWAYS_OPEN,
    PLIVO_AUTH_ID,
    add_worker,
    engine_of,
    simulator,
    with_hours,
)

BOOK_AND_SAY_THE_ADDRESS = "2,1,1,226001#,1,9,say:8#,2"


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def booked_with_an_address(app: Flask, sandbox: TwilioSandbox, keys: str = BOOK_AND_SAY_THE_ADDRESS) -> str:
    account = PLIVO_AUTH_ID if sandbox.name == "Plivo" else ACCOUNT_SID
    transcript = simulator(app.test_client(), account_sid=account, media_url=sandbox.base_url).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    with Session(engine_of(app)) as session:
        return session.exec(select(ServiceRequest.number)).one()


def signed_in(app: Flask, username: str, role: Role, provider: str | None = None) -> Console:
    add_user(engine_of(app), username, role, provider=provider)
    console = Console(app)
    console.sign_in(username)
    return console


def assigned_to_a_worker_of(app: Flask, number: str, provider: str) -> None:
    engine = engine_of(app)
    worker_id = add_worker(engine, "Ramesh Kumar", "+919812345678", 0.5)
    with session_scope(engine) as session:
        provider_id = session.exec(select(User.provider_id).where(col(User.provider_id).is_not(None))).first()
        assert provider_id is not None, provider
        session.execute(sa.update(Worker).where(col(Worker.id) == worker_id).values(provider_id=provider_id))
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.number) == number)
            .values(worker_id=worker_id, status=RequestStatus.ASSIGNED)
        )


def events(app: Flask, action: AuditAction) -> list[AuditEvent]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_an_agent_plays_the_spoken_address_streamed_from_the_platform(app: Flask, sandbox: TwilioSandbox) -> None:
    number = booked_with_an_address(app, sandbox)
    agent = signed_in(app, "asha", Role.AGENT)
    page = agent.get(f"/console/requests/{number}").get_data(as_text=True)
    source = f"/console/requests/{number}/address.mp3"
    assert f'<audio controls preload="none" src="{source}">' in page
    assert sandbox.base_url not in page  # the browser never learns the platform's URL

    played = agent.client.get(source)

    assert played.status_code == 200
    assert (played.mimetype, played.data) == ("audio/mpeg", RECORDING_AUDIO)
    assert played.headers["Cache-Control"] == "no-store"
    with Session(engine_of(app)) as session:
        (recording,) = session.exec(select(Recording)).all()
    (fetch,) = sandbox.recording_requests
    assert (fetch["method"], fetch["recording_id"], fetch["authorized"]) == ("GET", recording.recording_id, True)
    (heard,) = events(app, AuditAction.RECORDING_PLAYED)
    assert (heard.entity, heard.entity_id, heard.reason) == ("recording", recording.id, "console")
    assert heard.actor.startswith("user:")


def test_the_hindi_console_labels_the_spoken_address(app: Flask, sandbox: TwilioSandbox) -> None:
    with_address = booked_with_an_address(app, sandbox)
    agent = signed_in(app, "asha", Role.AGENT)
    agent.post("/console/language", {"language": "hi", "back": "/console/"})
    page = agent.get(f"/console/requests/{with_address}").get_data(as_text=True)
    assert "बोला हुआ पता" in page
    assert "8 सेकंड" in page


def test_a_request_without_a_spoken_address_says_so_and_plays_nothing(app: Flask, sandbox: TwilioSandbox) -> None:
    number = booked_with_an_address(app, sandbox, "2,1,1,226001#,1,9,-,2")
    agent = signed_in(app, "asha", Role.AGENT)
    page = agent.get(f"/console/requests/{number}").get_data(as_text=True)
    assert "<audio" not in page
    assert "None recorded." in page
    assert agent.client.get(f"/console/requests/{number}/address.mp3").status_code == 404


def test_a_provider_of_another_agency_is_refused_and_the_refusal_audited(app: Flask, sandbox: TwilioSandbox) -> None:
    number = booked_with_an_address(app, sandbox)
    signed_in(app, "gomti", Role.PROVIDER, provider="Gomti Services")
    assigned_to_a_worker_of(app, number, "Gomti Services")
    other = signed_in(app, "varuna", Role.PROVIDER, provider="Varuna Seva")

    refused = other.client.get(f"/console/requests/{number}/address.mp3")

    assert refused.status_code == 403
    assert sandbox.recording_requests == []
    (refusal,) = events(app, AuditAction.RECORDING_REFUSED)
    assert refusal.detail["path"] == f"/console/requests/{number}/address.mp3"
    assert events(app, AuditAction.RECORDING_PLAYED) == []


def test_the_agency_whose_worker_has_the_job_hears_it(app: Flask, sandbox: TwilioSandbox) -> None:
    number = booked_with_an_address(app, sandbox)
    gomti = signed_in(app, "gomti", Role.PROVIDER, provider="Gomti Services")
    assert gomti.client.get(f"/console/requests/{number}/address.mp3").status_code == 403  # not their job yet
    assigned_to_a_worker_of(app, number, "Gomti Services")
    assert gomti.client.get(f"/console/requests/{number}/address.mp3").data == RECORDING_AUDIO
    assert len(events(app, AuditAction.RECORDING_PLAYED)) == 1
    assert len(events(app, AuditAction.RECORDING_REFUSED)) == 1


def test_an_erased_recording_is_no_longer_played(app: Flask, sandbox: TwilioSandbox) -> None:
    number = booked_with_an_address(app, sandbox)
    with session_scope(engine_of(app)) as session:
        session.execute(sa.update(Recording).values(url="", erased_at=sa.func.now()))
    agent = signed_in(app, "asha", Role.AGENT)
    assert "<audio" not in agent.get(f"/console/requests/{number}").get_data(as_text=True)
    assert agent.client.get(f"/console/requests/{number}/address.mp3").status_code == 404
    assert sandbox.recording_requests == []
