"""An agent, and another system through the API, cancel a request with the citizen's reason or move
it to another visit slot: the same action as the citizen's on the phone (dispatch/changes.py), not
held by the citizen's policy, against the real app, database, Redis and the Twilio sandbox, by a
frozen clock (09:00 in Lucknow). The workers it concerns are told; the timeline says it in English
and in Hindi."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, enqueue, lifecycle
from dispatch.queues import worker as rq_worker
from sewamitra.app import create_app
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import ApiRole, AuditEvent, Offer, OfferStatus, RequestStatus, Role, ServiceRequest
from telephony import telephony
from tests.console import Console, add_user
from tests.factories import (
    ALWAYS_OPEN,
    LUCKNOW_REQUEST,
    Api,
    add_request,
    add_worker,
    engine_of,
    request_of,
    token,
    with_hours,
)

NOW = datetime(2030, 1, 1, 3, 30, tzinfo=UTC)  # 09:00 in Lucknow
WORKER = "+919800000801"
TODAY_AFTERNOON = "2030-01-01/afternoon"
TOMORROW_MORNING = "2030-01-02/morning"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def signed_in(app: Flask, language: str = "en") -> Console:
    add_user(engine_of(app), f"asha-{language}", Role.AGENT)
    console = Console(app)
    console.sign_in(f"asha-{language}")
    console.post("/console/language", {"language": language, "back": "/console/"})
    return console


def run_jobs(app: Flask) -> None:
    runtime = app.extensions["sewamitra"]
    context.install(
        context.JobContext(runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings), runtime.clock)
    )
    try:
        rq_worker(runtime.redis).work(burst=True)
    finally:
        context.install(None)


def offered(app: Flask) -> ServiceRequest:
    add_worker(engine_of(app), "Ramesh Kumar", WORKER, 0.5)
    request_id = add_request(engine_of(app), created=NOW - timedelta(minutes=5))
    enqueue.dispatch_request(app.extensions["sewamitra"].redis, request_id)
    run_jobs(app)
    found = request_of(engine_of(app), request_id)
    assert found.status is RequestStatus.OFFERED
    return found


def assigned(app: Flask) -> ServiceRequest:
    found = offered(app)
    with Session(engine_of(app)) as session:
        [offer] = session.exec(select(Offer).where(Offer.request_id == found.id)).all()
    from dispatch import offers

    accepted = offers.reply(engine_of(app), offer.id or 0, True, NOW, f"worker:{offer.worker_id}")
    assert accepted is offers.Answer.ACCEPTED
    return request_of(engine_of(app), found.id or 0)


def texts_to(sandbox: TwilioSandbox, phone: str) -> list[str]:
    return [m["body"] for m in sandbox.messages if m["to"] == phone]


def page(response: object) -> str:
    return html.unescape(response.get_data(as_text=True))  # type: ignore[attr-defined]


def events(app: Flask, request_id: int, action: AuditAction) -> list[AuditEvent]:
    with Session(engine_of(app)) as session:
        query = select(AuditEvent).where(AuditEvent.entity_id == request_id, AuditEvent.action == action)
        return list(session.exec(query.where(AuditEvent.entity == "service_request")).all())


# -- the console ----------------------------------------------------------------------------------------


def test_an_agent_cancels_with_the_citizens_reason_and_the_worker_asked_is_told(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    found = offered(app)
    agent = signed_in(app)
    shown = page(agent.get(f"/console/requests/{found.number}"))
    assert '<option value="worker_late">the worker is too late</option>' in shown
    assert '<th>Visit slot</th><td colspan="3" id="visit-slot">as soon as possible</td>' in shown
    sandbox.clear()

    agent.post(f"/console/requests/{found.number}/cancel", {"reason_key": "worker_late", "reason": "rang twice"})
    run_jobs(app)

    assert request_of(engine_of(app), found.id or 0).status is RequestStatus.CANCELLED
    [told] = texts_to(sandbox, WORKER)
    assert f"काम {found.number} रद्द" in told
    english = page(agent.get(f"/console/requests/{found.number}"))
    assert "cancelled (offered → cancelled): the worker is too late: rang twice" in english
    hindi = page(signed_in(app, "hi").get(f"/console/requests/{found.number}"))
    assert "कारीगर बहुत देर से: rang twice" in hindi
    assert '<th>विज़िट का समय</th><td colspan="3" id="visit-slot">' in hindi


def test_an_agent_moves_an_assigned_job_and_its_worker_keeps_it_and_is_told(app: Flask, sandbox: TwilioSandbox) -> None:
    found = assigned(app)
    agent = signed_in(app)
    shown = page(agent.get(f"/console/requests/{found.number}"))
    assert f'<option value="{TODAY_AFTERNOON}">today afternoon (12:00-16:00)</option>' in shown
    sandbox.clear()

    agent.post(f"/console/requests/{found.number}/reschedule", {"slot": "2030-01-01/morning"})  # begun already
    assert request_of(engine_of(app), found.id or 0).slot_starts_at is None
    moved = agent.post(
        f"/console/requests/{found.number}/reschedule", {"slot": TOMORROW_MORNING}, follow_redirects=True
    )

    assert "Moved to the new slot." in page(moved)
    assert "tomorrow morning (08:00-12:00)" in page(moved)
    assert f'<option value="{TOMORROW_MORNING}" selected>tomorrow morning (08:00-12:00)</option>' in page(moved)
    job = request_of(engine_of(app), found.id or 0)
    assert (job.status, job.worker_id) == (RequestStatus.ASSIGNED, found.worker_id)
    assert job.slot_starts_at == datetime(2030, 1, 2, 2, 30, tzinfo=UTC)
    run_jobs(app)
    [told] = texts_to(sandbox, WORKER)
    assert told == f"सेवामित्र: काम {found.number} का समय अब कल सुबह (08:00-12:00) है। तब न जा सकें तो 2 {found.number} भेजें।"
    hindi = page(signed_in(app, "hi").get(f"/console/requests/{found.number}"))
    assert "समय बदला गया: जितनी जल्दी हो सके → 2030-01-02/morning" in hindi


def test_a_worker_holding_the_offer_of_a_moved_request_is_told_the_new_time_before_answering(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    found = offered(app)  # offered "as soon as possible"
    sandbox.clear()

    signed_in(app).post(f"/console/requests/{found.number}/reschedule", {"slot": TOMORROW_MORNING})
    run_jobs(app)

    [told] = texts_to(sandbox, WORKER)
    assert told == f"सेवामित्र: काम {found.number} का समय अब कल सुबह (08:00-12:00) है। तब न जा सकें तो 2 {found.number} भेजें।"
    with Session(engine_of(app)) as session:
        [offer] = session.exec(select(Offer).where(Offer.request_id == found.id)).all()
    assert offer.status is OfferStatus.PENDING  # the offer stays open, its time now told


def test_an_agent_is_not_held_by_the_citizens_policy(app: Flask) -> None:
    found = assigned(app)  # a job in hand with no slot: the citizen alone could not cancel it
    agent = signed_in(app)
    agent.post(f"/console/requests/{found.number}/cancel", {"reason_key": "not_needed"})
    assert request_of(engine_of(app), found.id or 0).status is RequestStatus.CANCELLED


def test_where_workers_hold_several_jobs_a_move_onto_another_of_theirs_is_refused(
    helpline_settings: Settings,
) -> None:
    parallel = helpline_settings.model_copy(
        update={"dispatch": helpline_settings.dispatch.model_copy(update={"allow_parallel_jobs": True})}
    )
    app = create_app(with_hours(parallel, **ALWAYS_OPEN), FrozenClock(NOW))
    try:
        engine = engine_of(app)
        worker_id = add_worker(engine, "Ramesh Kumar", WORKER, 0.5)
        first, second = add_request(engine, created=NOW), add_request(engine, created=NOW)
        with session_scope(engine) as session:
            for request_id in (first, second):
                assert lifecycle.assign(session, request_id, worker_id, "user:1", NOW, allow_parallel_jobs=True).ok
            session.execute(
                sa.update(ServiceRequest)
                .where(col(ServiceRequest.id) == first)
                .values(
                    slot_starts_at=datetime(2030, 1, 2, 2, 30, tzinfo=UTC),
                    slot_ends_at=datetime(2030, 1, 2, 6, 30, tzinfo=UTC),
                )
            )
        agent = signed_in(app)
        number, busy = request_of(engine, second).number, request_of(engine, first).number
        refused = agent.post(
            f"/console/requests/{number}/reschedule", {"slot": TOMORROW_MORNING}, follow_redirects=True
        )
        assert f"Ramesh Kumar has job {busy} in that slot" in page(refused)
        assert request_of(engine, second).slot_starts_at is None
        moved = agent.post(f"/console/requests/{number}/reschedule", {"slot": TODAY_AFTERNOON}, follow_redirects=True)
        assert "Moved to the new slot." in page(moved)
    finally:
        app.extensions["sewamitra"].engine.dispose()


# -- the API --------------------------------------------------------------------------------------------


def test_a_partner_moves_and_cancels_what_it_filed_with_a_reason_key(app: Flask, sandbox: TwilioSandbox) -> None:
    portal = Api(app, token(app, ApiRole.PARTNER, "city-app"))
    listed = portal.get("/api/v1/slots").get_json()["items"]
    assert listed[0] == {
        "key": TODAY_AFTERNOON,
        "starts_at": "2030-01-01T12:00:00+05:30",
        "ends_at": "2030-01-01T16:00:00+05:30",
        "name_en": "today afternoon (12:00-16:00)",
        "name_hi": "आज दोपहर (12:00-16:00)",
    }
    number = portal.post("/api/v1/requests", LUCKNOW_REQUEST).get_json()["number"]

    gone = portal.post(f"/api/v1/requests/{number}/reschedule", {"slot": "2030-01-01/morning"})
    assert gone.status_code == 400
    assert gone.get_json()["error"]["fields"] == {"slot": "not an open slot: see GET /api/v1/slots"}
    moved = portal.post(f"/api/v1/requests/{number}/reschedule", {"slot": TOMORROW_MORNING})
    assert moved.status_code == 200
    assert moved.get_json()["slot"]["key"] == TOMORROW_MORNING
    assert moved.get_json()["slot"]["starts_at"] == "2030-01-02T08:00:00+05:30"
    assert moved.get_json()["timeline"][-1]["action"] == "request.rescheduled"

    unknown = portal.post(f"/api/v1/requests/{number}/cancel", {"reason_key": "bored"})
    assert unknown.status_code == 400
    assert "not_needed" in unknown.get_json()["error"]["fields"]["reason_key"]
    assert portal.post(f"/api/v1/requests/{number}/cancel", {}).status_code == 400
    cancelled = portal.post(f"/api/v1/requests/{number}/cancel", {"reason_key": "fixed_myself"})
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "cancelled"
    again = portal.post(f"/api/v1/requests/{number}/reschedule", {"slot": TODAY_AFTERNOON})
    assert again.status_code == 409
    assert again.get_json()["error"]["message"] == "a request that is cancelled cannot be moved"
    with Session(engine_of(app)) as session:
        request_id = session.exec(select(ServiceRequest.id).where(ServiceRequest.number == number)).one() or 0
    [event] = events(app, request_id, AuditAction.REQUEST_CANCELLED)
    assert (event.reason, event.actor, event.detail["via"]) == ("fixed it myself", "api:city-app", "api")


def test_another_partner_cannot_move_a_request_it_did_not_file(app: Flask) -> None:
    portal = Api(app, token(app, ApiRole.PARTNER, "city-app"))
    other = Api(app, token(app, ApiRole.PARTNER, "other-app"))
    number = portal.post("/api/v1/requests", LUCKNOW_REQUEST).get_json()["number"]
    assert other.post(f"/api/v1/requests/{number}/reschedule", {"slot": TODAY_AFTERNOON}).status_code == 404
    with Session(engine_of(app)) as session:
        found = session.exec(select(ServiceRequest).where(col(ServiceRequest.number) == number)).one()
    assert found.slot_starts_at is None
    assert events(app, found.id or 0, AuditAction.REQUEST_RESCHEDULED) == []
