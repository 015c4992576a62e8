"""The console's side of reworks and workers' quality: the request page links a job and its rework
both ways (English and Hindi), an agent books a rework from the worklist or the request page, a
worker's complaints put them on their agency's review list (scoped to the agency), an agency clears
it with a note and suspends a worker, whom the console then refuses to assign."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.settings import Settings
from dispatch import jobs
from storage.db import session_scope
from storage.models import AuditEvent, Provider, RequestStatus, Role, ServiceRequest, Worker
from tests.console import Console, add_user
from tests.factories import add_request, add_worker, engine_of, with_hours

ALWAYS_OPEN = {"opens": "00:00", "closes": "23:59"}


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def person(app: Flask, username: str, role: Role, provider: str | None = None) -> Console:
    add_user(engine_of(app), username, role, provider=provider)
    console = Console(app)
    console.sign_in(username)
    return console


def of_agency(app: Flask, worker_id: int, agency: str) -> None:
    with session_scope(engine_of(app)) as session:
        provider = session.exec(select(Provider).where(Provider.name == agency)).first()
        if provider is None:
            provider = Provider(name=agency, district="LUCKNOW")
            session.add(provider)
            session.flush()
        session.execute(sa.update(Worker).where(col(Worker.id) == worker_id).values(provider_id=provider.id))


def finished(app: Flask, worker_id: int, *, rating: int | None = None, days_ago: int = 0) -> ServiceRequest:
    """A job the worker did (and the citizen rated, if `rating`)."""
    engine = engine_of(app)
    request_id = add_request(engine)
    done = datetime.now(UTC) - timedelta(days=days_ago)
    status = RequestStatus.CLOSED if rating else RequestStatus.COMPLETED
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(status=status, worker_id=worker_id, completed_at=done, assigned_at=done, rating=rating)
        )
    with Session(engine) as session:
        found = session.get(ServiceRequest, request_id)
        assert found is not None
        return found


def rework_of(app: Flask, request_id: int) -> ServiceRequest | None:
    with Session(engine_of(app)) as session:
        return session.exec(select(ServiceRequest).where(ServiceRequest.rework_of_id == request_id)).first()


def html(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def test_an_agent_books_a_rework_from_the_request_page_and_both_pages_link_each_other(
    app: Flask, jobs_run: None
) -> None:
    ramesh = add_worker(engine_of(app), "Ramesh Kumar", "+919800000801", 0.5)
    job = finished(app, ramesh)
    agent = person(app, "asha.agent", Role.AGENT)
    answer = agent.post(f"/console/requests/{job.number}/rework", {"other_worker": "yes"}, follow_redirects=True)
    rework = rework_of(app, job.id or 0)
    assert rework is not None
    assert rework.avoid_worker_id == ramesh
    assert f"Rework visit {rework.number} booked." in html(answer)
    page = html(agent.get(f"/console/requests/{rework.number}"))
    assert f'id="rework-of" href="/console/requests/{job.number}"' in page
    page = html(agent.get(f"/console/requests/{job.number}"))
    assert f'id="reworked-by" href="/console/requests/{rework.number}"' in page
    assert f"Rework {rework.number}" in page  # on the timeline
    agent.post("/console/language", {"language": "hi", "back": f"/console/requests/{job.number}"})
    page = html(agent.get(f"/console/requests/{job.number}"))
    assert "इसकी दोबारा सेवा" in page
    assert f"दोबारा सेवा {rework.number}" in page
    assert "Book a rework visit" not in page  # one rework a job


def test_a_finished_jobs_page_says_the_visit_was_done_not_that_the_worker_is_not_on_the_way(app: Flask) -> None:
    ramesh = add_worker(engine_of(app), "Ramesh Kumar", "+919800000801", 0.5)
    job = finished(app, ramesh)
    agent = person(app, "asha.agent", Role.AGENT)
    page = html(agent.get(f"/console/requests/{job.number}"))
    visit = page[page.index('<tr id="visit">') :].split("</tr>")[0]
    assert "done" in visit
    assert "not yet on the way" not in visit
    agent.post("/console/language", {"language": "hi", "back": f"/console/requests/{job.number}"})
    page = html(agent.get(f"/console/requests/{job.number}"))
    assert "पूरा" in page[page.index('<tr id="visit">') :].split("</tr>")[0]


def test_a_rating_an_agent_records_on_the_worklist_books_the_rework(app: Flask, jobs_run: None) -> None:
    ramesh = add_worker(engine_of(app), "Ramesh Kumar", "+919800000811", 0.5)
    job = finished(app, ramesh)
    with session_scope(engine_of(app)) as session:  # no rating came after the feedback call
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == job.id)
            .values(completed_at=datetime.now(UTC) - timedelta(hours=3))
        )
    agent = person(app, "asha.agent", Role.AGENT)
    assert job.number in html(agent.get("/console/worklist"))
    agent.post(f"/console/worklist/{job.number}", {"outcome": "resolved", "rating": "2"})
    rework = rework_of(app, job.id or 0)
    assert rework is not None
    with Session(engine_of(app)) as session:
        rated = session.get(ServiceRequest, job.id)
        assert rated is not None
        assert (rated.status, rated.rating) == (RequestStatus.CLOSED, 2)
    jobs.dispatch_request(rework.id or 0)
    with Session(engine_of(app)) as session:
        offered = session.exec(select(ServiceRequest).where(ServiceRequest.id == rework.id)).one()
    assert offered.status is RequestStatus.OFFERED


def test_complaints_put_a_worker_on_their_agencys_review_list_which_the_agency_clears_with_a_note(
    app: Flask, jobs_run: None
) -> None:
    engine = engine_of(app)
    ramesh = add_worker(engine, "Ramesh Kumar", "+919800000821", 0.5)
    other = add_worker(engine, "Other Agency Worker", "+919800000822", 0.5)
    of_agency(app, ramesh, "Seva Agency")
    of_agency(app, other, "Other Agency")
    for worker in (ramesh, other):
        finished(app, worker, rating=1, days_ago=3)
        finished(app, worker, rating=2, days_ago=2)
        job = finished(app, worker)
        agent = person(app, f"agent{worker}", Role.AGENT)
        agent.post(f"/console/worklist/{job.number}", {"outcome": "resolved", "rating": "1"})
    with Session(engine) as session:
        flagged = session.get(Worker, ramesh)
        assert flagged is not None
        assert flagged.review_reason == "3 complaints in 30 days"

    agency = person(app, "seva.staff", Role.PROVIDER, provider="Seva Agency")
    page = html(agency.get("/console/quality"))
    assert "Ramesh Kumar" in page
    assert "3 complaints in 30 days" in page
    assert "Other Agency Worker" not in page  # another agency's worker
    supervisor = person(app, "sunita.supervisor", Role.SUPERVISOR)
    assert "Other Agency Worker" in html(supervisor.get("/console/quality"))
    assert agency.post(f"/console/quality/workers/{other}/clear", {"reason": "not ours"}).status_code == 403

    agency.post(f"/console/quality/workers/{ramesh}/clear", {"reason": "retrained on fittings"})
    with Session(engine) as session:
        cleared = session.get(Worker, ramesh)
        assert cleared is not None
        assert cleared.review_reason is None
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "worker.review_cleared")).all()
    assert (event.entity_id, event.reason) == (ramesh, "retrained on fittings")
    agency.post("/console/language", {"language": "hi", "back": "/console/quality"})
    assert "समीक्षा सूची" in html(agency.get("/console/quality"))


def test_a_suspended_worker_is_refused_by_the_console_until_the_suspension_is_lifted(
    app: Flask, jobs_run: None
) -> None:
    engine = engine_of(app)
    ramesh = add_worker(engine, "Ramesh Kumar", "+919800000831", 0.5)
    of_agency(app, ramesh, "Seva Agency")
    agency = person(app, "seva.staff", Role.PROVIDER, provider="Seva Agency")
    assert agency.post(f"/console/quality/workers/{ramesh}/suspend", {"reason": ""}).status_code == 302
    with Session(engine) as session:
        assert session.get(Worker, ramesh).suspended_at is None  # type: ignore[union-attr]
    agency.post(f"/console/quality/workers/{ramesh}/suspend", {"reason": "complaints of rude behaviour"})
    request_id = add_request(engine)
    jobs.rebuild_index()
    assert jobs.dispatch_request(request_id) == "no eligible worker in range"
    with Session(engine) as session:
        number = session.get(ServiceRequest, request_id).number  # type: ignore[union-attr]
    agent = person(app, "asha.agent", Role.AGENT)
    answer = agent.post(f"/console/requests/{number}/assign", {"worker": str(ramesh)}, follow_redirects=True)
    assert "Ramesh Kumar is suspended (complaints of rude behaviour): lift it first" in html(answer)
    page = html(agency.get(f"/console/workers/{ramesh}"))
    assert "Suspended" in page
    agency.post(f"/console/quality/workers/{ramesh}/lift", {"reason": "apologised; warned"})
    answer = agent.post(f"/console/requests/{number}/assign", {"worker": str(ramesh)}, follow_redirects=True)
    assert "Assigned." in html(answer)
    with Session(engine) as session:
        actions = session.exec(
            select(AuditEvent.action).where(AuditEvent.entity == "worker", AuditEvent.entity_id == ramesh)
        ).all()
    assert [a for a in actions if a.startswith("worker.susp")] == ["worker.suspended", "worker.suspension_lifted"]


def test_rework_counts_on_the_worker_list_and_page_and_the_agencys_page(app: Flask, jobs_run: None) -> None:
    engine = engine_of(app)
    ramesh = add_worker(engine, "Ramesh Kumar", "+919800000841", 0.5)
    of_agency(app, ramesh, "Seva Agency")
    agent = person(app, "asha.agent", Role.AGENT)
    for _ in range(2):
        job = finished(app, ramesh)
        agent.post(f"/console/requests/{job.number}/rework")
    supervisor = person(app, "sunita.supervisor", Role.SUPERVISOR)
    assert 'id="reworks">2<' in html(supervisor.get(f"/console/workers/{ramesh}"))
    assert 'class="num reworks">2<' in html(supervisor.get("/console/workers"))
    with Session(engine) as session:
        provider_id = session.exec(select(Provider.id).where(Provider.name == "Seva Agency")).one()
    page = html(supervisor.get(f"/console/providers/{provider_id}"))
    assert '<b class="num">2</b>Reworks' in page


def test_the_agency_sees_verifications_expiring_in_n_days_and_expired(app: Flask) -> None:
    engine = engine_of(app)
    valid = app.extensions["sewamitra"].settings.workers_quality.police_verification_valid_days
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()  # the console's day is the call centre's
    for name, phone, days_ago in (
        ("Soon Singh", "+919800000851", valid - 10),
        ("Lapsed Lal", "+919800000852", valid + 5),
        ("Fresh Fatima", "+919800000853", 30),
    ):
        worker = add_worker(engine, name, phone, 0.5)
        of_agency(app, worker, "Seva Agency")
        with session_scope(engine) as session:
            session.execute(
                sa.update(Worker)
                .where(col(Worker.id) == worker)
                .values(police_verified_on=today - timedelta(days=days_ago))
            )
    agency = person(app, "seva.staff", Role.PROVIDER, provider="Seva Agency")
    page = html(agency.get("/console/quality"))
    expiring = page[page.index('id="expiring"') :]
    assert "Fresh Fatima" not in expiring
    soon = expiring[expiring.index("Soon Singh") :]
    assert "expires in 10 days" in soon[: soon.index("</tr>")]
    lapsed = expiring[expiring.index("Lapsed Lal") :]
    assert ">expired<" in lapsed[: lapsed.index("</tr>")]
    agency.post("/console/language", {"language": "hi", "back": "/console/quality"})
    assert "दिन में समाप्त" in html(agency.get("/console/quality"))
