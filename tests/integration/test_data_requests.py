"""A citizen asks, through an agent, what the helpline holds about them, and then to have it erased:
the agent files it from the caller's screen, a supervisor approves the erasure, and afterwards no
table and no Redis key holds their number; the audit trail says it was done, and holds no personal
data."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.settings import Settings
from dispatch import enqueue
from storage import callqueue
from storage.db import session_scope
from storage.models import AuditEvent, Caller, PrivacyRequest, RequestStatus, Role, ServiceRequest
from tests.console import Console, add_user
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    call,
    engine_of,
    holds,
    redis_dump,
    run_jobs,
    table_dump,
    with_hours,
)

OTHER = "+919811100001"
PLUMBER_AT_226001 = "2,1,1,226001#,1,9"


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def agent(app: Flask) -> Console:
    add_user(engine_of(app), "asha", Role.AGENT)
    console = Console(app)
    console.sign_in("asha")
    return console


@pytest.fixture
def supervisor(app: Flask) -> Console:
    add_user(engine_of(app), "vikram", Role.SUPERVISOR)
    console = Console(app)
    console.sign_in("vikram")
    return console


def caller_id(app: Flask, phone: str) -> int:
    with Session(engine_of(app)) as session:
        found = session.exec(select(Caller.id).where(Caller.phone == phone)).one()
    assert found is not None
    return found


def audit_of(app: Flask, action: str) -> list[AuditEvent]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_an_agent_shows_a_caller_what_is_held_about_them(app: Flask, agent: Console) -> None:
    call(app, PLUMBER_AT_226001)
    run_jobs(app)
    citizen = caller_id(app, CITIZEN)
    assert 'id="file-access"' in agent.get(f"/console/callers/{citizen}").get_data(as_text=True)

    shown = agent.post(f"/console/data-requests/callers/{citizen}", {"kind": "access"}, follow_redirects=True)

    text = shown.get_data(as_text=True)
    assert "What the helpline holds about this caller" in text
    assert CITIZEN in text
    with Session(engine_of(app)) as session:
        [request] = session.exec(select(ServiceRequest)).all()
    assert request.number in text
    [given] = audit_of(app, "privacy.access_given")
    assert given.detail == {"caller_id": citizen}


def test_an_erasure_asked_through_an_agent_and_approved_by_a_supervisor_leaves_no_trace(
    app: Flask, agent: Console, supervisor: Console
) -> None:
    engine, connection = engine_of(app), app.extensions["sewamitra"].redis
    for number in (CITIZEN, OTHER):
        call(app, PLUMBER_AT_226001, from_number=number)
    run_jobs(app)
    for number, sid in ((CITIZEN, "1"), (OTHER, "2")):  # both waiting for an agent, in Redis
        callqueue.note_waiting(connection, callqueue.Call(f"CA{sid * 32}", number, "en"), 1, 10, time.time())
        enqueue.receive_sms(connection, f"SM{sid * 32}", number, "my name is Asha Verma")
    citizen = caller_id(app, CITIZEN)
    assert holds(table_dump(engine), CITIZEN)
    assert holds(redis_dump(connection), CITIZEN)

    agent.post(f"/console/data-requests/callers/{citizen}", {"kind": "erasure"})
    [filed] = _requests(app)
    assert filed.status == "pending"
    assert agent.post(f"/console/data-requests/{filed.id}/approve").status_code == 403  # agents file, not approve
    assert f"/console/data-requests/{filed.id}" in supervisor.get("/console/data-requests/").get_data(as_text=True)

    # The citizen's request is still open: the erasure waits until it is closed.
    refused = supervisor.post(f"/console/data-requests/{filed.id}/approve", follow_redirects=True)
    assert "The caller has a request still open" in refused.get_data(as_text=True)
    assert holds(table_dump(engine), CITIZEN)
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.caller_id) == citizen)
            .values(status=RequestStatus.CANCELLED)
        )

    done = supervisor.post(f"/console/data-requests/{filed.id}/approve", follow_redirects=True)

    assert "The caller&#39;s data is erased." in done.get_data(as_text=True)
    tables, keys = table_dump(engine), redis_dump(connection)
    assert not holds(tables, CITIZEN), "the erased citizen's number is still in a table"
    assert not holds(keys, CITIZEN), "the erased citizen's number is still in Redis"
    assert holds(tables, OTHER)
    assert [w.phone for w in callqueue.waiting(connection, time.time())] == [OTHER]
    [filed] = _requests(app)
    assert filed.status == "done"
    [erased] = audit_of(app, "privacy.erased")
    assert erased.entity == "privacy_request"
    assert erased.entity_id == filed.id
    assert erased.detail["numbers"] == 1
    assert all(isinstance(value, int) for value in erased.detail.values())  # counts, no personal data
    assert erased.reason is None

    again = supervisor.post(f"/console/data-requests/{filed.id}/approve", follow_redirects=True)
    assert "This request was decided before." in again.get_data(as_text=True)
    assert len(audit_of(app, "privacy.erased")) == 1
    page = agent.get(f"/console/callers/{citizen}").get_data(as_text=True)
    assert '<span class="num" id="caller-phone">erased</span>' in page


def _requests(app: Flask) -> list[PrivacyRequest]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(PrivacyRequest)).all())
