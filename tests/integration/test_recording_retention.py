"""Recordings of what callers said (the spoken address, their calls with agents) are kept
`privacy.retention.recordings` days: the nightly retention job deletes older ones at the platform (a
REST DELETE through its SDK, which the sandbox records) and here; an approved erasure of a caller
deletes theirs at once. On Twilio and on Plivo, with a frozen clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs, retention
from storage.models import Caller, Recording, RecordingKind, RequestStatus, Role, ServiceRequest
from tests.console import add_user
from tests.factories import (
    ACCOUNT_SID,
    ALWAYS_OPEN,
    PLIVO_AUTH_ID,
    engine_of,
    jobs_context,
    platform_of,
    signed_post,
    simulator,
    with_hours,
)

BOOK_AND_SAY_THE_ADDRESS = "2,1,1,226001#,1,9,say:8#,2"
OLD, RECENT = "+919812345678", "+919876501234"
NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # the nightly run


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def nightly(app: Flask) -> Iterator[None]:
    """The job's context, as `sewamitra worker` installs it, with the clock frozen at the nightly run."""
    with jobs_context(app, FrozenClock(NOW)):
        yield


def book(app: Flask, sandbox: TwilioSandbox, number: str) -> Recording:
    account = PLIVO_AUTH_ID if sandbox.name == "Plivo" else ACCOUNT_SID
    call = simulator(app.test_client(), from_number=number, account_sid=account, media_url=sandbox.base_url)
    transcript = call.run(BOOK_AND_SAY_THE_ADDRESS)
    assert not transcript.errors, transcript.render(requests=True)
    with Session(engine_of(app)) as session:
        return session.exec(select(Recording).order_by(col(Recording.id).desc())).first()  # type: ignore[return-value]


def agents_call_recorded(app: Flask, sandbox: TwilioSandbox, call_sid: str, agent: int) -> Recording:
    """The platform reports a recording of an agent's call with the caller on `call_sid`, as it does
    when their room ends (its recording callback, signed)."""
    platform = platform_of(app)
    if platform == "plivo":
        made = str(uuid.uuid4())
        form = {
            "recording_id": made,
            "record_url": f"{sandbox.base_url}/v1/Account/{PLIVO_AUTH_ID}/Recording/{made}.mp3",
        }
    else:
        made = "RE" + uuid.uuid4().hex
        form = {"AccountSid": ACCOUNT_SID, "RecordingSid": made, "RecordingStatus": "completed"}
        form |= {"RecordingUrl": f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{made}"}
    path = f"/{platform}/voice/agent/recorded?agent={agent}&call={call_sid}"
    assert signed_post(app.test_client(), path, form | {"RecordingDuration": "30"}).status_code == 204
    with Session(engine_of(app)) as session:
        return session.exec(select(Recording).where(Recording.recording_id == made)).one()


def an_agent(app: Flask) -> int:
    agent = add_user(engine_of(app), "asha", Role.AGENT).id
    assert agent is not None
    return agent


def made_days_before(app: Flask, recording: Recording, days: int) -> None:
    with Session(engine_of(app)) as session, session.begin():
        session.execute(
            sa.update(Recording).where(col(Recording.id) == recording.id).values(created_at=NOW - timedelta(days=days))
        )


def now_of(app: Flask, recording: Recording) -> Recording:
    with Session(engine_of(app)) as session:
        found = session.get(Recording, recording.id)
        assert found is not None
        return found


def deletes(sandbox: TwilioSandbox) -> list[str]:
    return [r["recording_id"] for r in sandbox.recording_requests if r["method"] == "DELETE" and r["authorized"]]


def media(sandbox: TwilioSandbox, recording: Recording) -> int:
    """What the platform answers to a fetch of the recording's media now."""
    return requests.get(recording.url, timeout=5).status_code


def test_the_nightly_job_deletes_recordings_past_their_time_at_the_platform_and_here(
    app: Flask, sandbox: TwilioSandbox, nightly: None
) -> None:
    old, recent = book(app, sandbox, OLD), book(app, sandbox, RECENT)
    made_days_before(app, old, 91)  # privacy.retention.recordings: 90
    made_days_before(app, recent, 89)
    assert media(sandbox, old) == 200

    counts = jobs.erase_expired()

    assert counts["recordings_deleted"] == 1
    assert deletes(sandbox) == [old.recording_id]
    assert media(sandbox, old) == 404
    assert (now_of(app, old).url, now_of(app, old).erased_at) == ("", NOW)
    assert now_of(app, recent).url == recent.url
    assert now_of(app, recent).erased_at is None
    assert jobs.erase_expired()["recordings_deleted"] == 0
    assert deletes(sandbox) == [old.recording_id]


def test_a_recording_the_platform_cannot_delete_tonight_is_deleted_the_next_night(
    app: Flask, sandbox: TwilioSandbox, nightly: None
) -> None:
    old = book(app, sandbox, OLD)
    made_days_before(app, old, 91)
    sandbox.fail_next(1, 429)  # rate limited (not a 5xx: the Plivo SDK would try its fallback hosts)

    assert jobs.erase_expired()["recordings_deleted"] == 0
    assert now_of(app, old).url == old.url
    assert jobs.erase_expired()["recordings_deleted"] == 1
    assert deletes(sandbox) == [old.recording_id]
    assert now_of(app, old).erased_at == NOW


def test_an_approved_erasure_deletes_the_callers_recordings_at_once(app: Flask, sandbox: TwilioSandbox) -> None:
    theirs, other = book(app, sandbox, OLD), book(app, sandbox, RECENT)
    runtime = app.extensions["sewamitra"]
    with Session(runtime.engine) as session, session.begin():
        caller = session.exec(select(Caller).where(Caller.phone == OLD)).one()
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.caller_id) == caller.id)
            .values(status=RequestStatus.CLOSED)
        )
        caller_id = caller.id or 0

    counts = retention.erase_caller(runtime.engine, runtime.redis, runtime.settings, caller_id, NOW)

    assert counts.recordings_deleted == 1
    assert deletes(sandbox) == [theirs.recording_id]
    assert now_of(app, theirs).erased_at == NOW
    assert now_of(app, other).erased_at is None
    assert media(sandbox, theirs) == 404
    assert media(sandbox, other) == 200


def test_the_nightly_job_deletes_the_recordings_of_agents_calls_past_their_time_too(
    app: Flask, sandbox: TwilioSandbox, nightly: None
) -> None:
    agent = an_agent(app)
    old = agents_call_recorded(app, sandbox, book(app, sandbox, OLD).call_sid, agent)
    recent = agents_call_recorded(app, sandbox, book(app, sandbox, RECENT).call_sid, agent)
    assert (old.kind, old.agent_id) == (RecordingKind.AGENT_CALL, agent)
    made_days_before(app, old, 91)  # privacy.retention.recordings: 90
    made_days_before(app, recent, 89)

    jobs.erase_expired()

    assert old.recording_id in deletes(sandbox)
    assert recent.recording_id not in deletes(sandbox)
    assert (now_of(app, old).url, now_of(app, old).erased_at) == ("", NOW)
    assert media(sandbox, old) == 404
    assert now_of(app, recent).erased_at is None


def test_an_approved_erasure_deletes_the_callers_calls_with_agents_at_once(app: Flask, sandbox: TwilioSandbox) -> None:
    agent = an_agent(app)
    theirs = agents_call_recorded(app, sandbox, book(app, sandbox, OLD).call_sid, agent)
    other = agents_call_recorded(app, sandbox, book(app, sandbox, RECENT).call_sid, agent)
    runtime = app.extensions["sewamitra"]
    with Session(runtime.engine) as session, session.begin():
        caller = session.exec(select(Caller).where(Caller.phone == OLD)).one()
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.caller_id) == caller.id)
            .values(status=RequestStatus.CLOSED)
        )
        caller_id = caller.id or 0

    retention.erase_caller(runtime.engine, runtime.redis, runtime.settings, caller_id, NOW)

    assert theirs.recording_id in deletes(sandbox)
    assert (now_of(app, theirs).url, now_of(app, theirs).erased_at) == ("", NOW)
    assert other.recording_id not in deletes(sandbox)
    assert now_of(app, other).erased_at is None
