"""A job the citizen is unhappy with is visited again: a rating of 2 or less (the feedback call, an
SMS reply) or a problem reported books a rework, a new request linked to the job, offered first to
the worker who did it (their SMS says it redoes job N); when they decline, another worker gets it;
the citizen may key for another worker at once. Real databases, Redis, RQ jobs and the platforms'
webhooks and sandboxes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, geoindex, jobs
from dispatch.context import JobContext, install
from storage.db import session_scope
from storage.models import AuditEvent, OfferStatus, Provider, RequestStatus, ServiceRequest, Worker
from tests.factories import (
    CITIZEN,
    add_request,
    add_worker,
    answer_our_call,
    assigned_job,
    offers_of,
    request_of,
    simulator,
    sms_from,
)
from tests.factories import run_context_jobs as run_jobs

pytestmark = [pytest.mark.both_databases, pytest.mark.both_platforms]
RAMESH, SURESH = "+919800000701", "+919800000702"


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    return helpline_settings


@pytest.fixture
def webhook(client: FlaskClient) -> FlaskClient:
    return client


def texts_to(sandbox: TwilioSandbox, phone: str) -> list[str]:
    return [m["body"] for m in sandbox.messages if m["to"] == phone]


def done_job(installed: context.JobContext, engine: sa.Engine, webhook: FlaskClient) -> ServiceRequest:
    """Ramesh (nearest) takes a request and reports it done; Suresh, a little further, is free too."""
    request = assigned_job(installed, engine, webhook, RAMESH)
    add_worker(engine, "Suresh Yadav", SURESH, 2.0)
    jobs.rebuild_index()
    sms_from(webhook, RAMESH, f"DONE {request.number} {request.completion_code}")
    run_jobs(installed)
    assert request_of(engine, request.id or 0).status is RequestStatus.COMPLETED
    return request_of(engine, request.id or 0)


def rework_of(engine: sa.Engine, request_id: int) -> ServiceRequest:
    with Session(engine) as session:
        return session.exec(select(ServiceRequest).where(ServiceRequest.rework_of_id == request_id)).one()


def worker_id(engine: sa.Engine, phone: str) -> int:
    with Session(engine) as session:
        found = session.exec(select(Worker).where(Worker.phone == phone)).one()
        return found.id or 0


def test_a_two_on_the_feedback_call_books_a_rework_for_the_same_worker_who_declines_then_another(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    job = done_job(installed, engine, webhook)
    transcript = answer_our_call(webhook, sandbox.calls[-1], "2,1")
    rework = rework_of(engine, job.id or 0)
    assert not transcript.said("आपकी राय के लिए धन्यवाद।")
    assert transcript.said("हमें खेद है कि काम ठीक नहीं हुआ।")
    assert transcript.said("पिछली बार से अलग कर्मी चाहें तो 2 दबाएँ।")
    closed = request_of(engine, job.id or 0)
    assert (closed.status, closed.rating) == (RequestStatus.CLOSED, 2)
    assert (rework.caller_id, rework.service_code, rework.pincode, rework.address_note) == (
        job.caller_id,
        job.service_code,
        job.pincode,
        job.address_note,
    )

    run_jobs(installed)  # the rework's dispatch, and the citizen's SMS
    told = texts_to(sandbox, CITIZEN)[-1]
    assert f"अनुरोध {job.number} हेतु दोबारा सेवा अनुरोध {rework.number} दर्ज हुआ" in told
    assert RAMESH[3:] not in told
    [first] = offers_of(engine, rework.id or 0)
    assert first.worker_id == worker_id(engine, RAMESH)
    offer_text = texts_to(sandbox, RAMESH)[-1]
    assert f"दोबारा काम {rework.number} (काम {job.number} का)" in offer_text

    sms_from(webhook, RAMESH, "2")  # Ramesh declines the rework
    run_jobs(installed)
    offered = offers_of(engine, rework.id or 0)
    assert [(o.worker_id, o.status) for o in offered] == [
        (worker_id(engine, RAMESH), OfferStatus.DECLINED),
        (worker_id(engine, SURESH), OfferStatus.PENDING),
    ]
    assert rework.number in texts_to(sandbox, SURESH)[-1]


def test_the_citizen_keys_two_for_another_worker_and_the_first_is_never_asked(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    job = done_job(installed, engine, webhook)
    transcript = answer_our_call(webhook, sandbox.calls[-1], "1,2")
    assert transcript.said("ठीक है, दूसरा कर्मी भेजा जाएगा।")
    rework = rework_of(engine, job.id or 0)
    assert rework.avoid_worker_id == worker_id(engine, RAMESH)
    run_jobs(installed)
    assert [o.worker_id for o in offers_of(engine, rework.id or 0)] == [worker_id(engine, SURESH)]
    with Session(engine) as session:
        asked = session.exec(
            select(AuditEvent.action).where(AuditEvent.entity == "service_request", AuditEvent.entity_id == rework.id)
        ).all()
    assert "request.rework_other" in asked


def test_a_one_by_sms_books_the_rework_and_tells_the_citizen_its_number(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    job = done_job(installed, engine, webhook)
    sms_from(webhook, CITIZEN, "1")
    run_jobs(installed)
    rework = rework_of(engine, job.id or 0)
    assert request_of(engine, job.id or 0).rating == 1
    told = texts_to(sandbox, CITIZEN)[-1]
    assert f"अनुरोध {job.number} हेतु दोबारा सेवा अनुरोध {rework.number} दर्ज हुआ" in told
    assert RAMESH[3:] not in told
    [offer] = offers_of(engine, rework.id or 0)
    assert offer.worker_id == worker_id(engine, RAMESH)
    with Session(engine) as session:
        trail = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "service_request", AuditEvent.entity_id == job.id)
        ).all()
    [booked] = [e for e in trail if e.action == "request.rework"]
    assert booked.detail["rework_number"] == rework.number
    assert booked.reason == "rated 1"


def test_a_good_rating_books_no_rework_and_a_second_low_one_no_second(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    job = done_job(installed, engine, webhook)
    sms_from(webhook, CITIZEN, "4")
    run_jobs(installed)
    sms_from(webhook, CITIZEN, "1")  # the job is rated: nothing waits for a rating any more
    run_jobs(installed)
    with Session(engine) as session:
        assert session.exec(select(ServiceRequest).where(col(ServiceRequest.rework_of_id) == job.id)).all() == []
    assert request_of(engine, job.id or 0).rating == 4


def test_a_suspended_worker_gets_no_rework_offer_and_another_worker_does(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    job = done_job(installed, engine, webhook)
    with session_scope(engine) as session:
        session.execute(sa.update(Worker).where(col(Worker.phone) == RAMESH).values(suspended_at=datetime.now(UTC)))
    jobs.rebuild_index()
    nearby = geoindex.nearby(installed.redis, "plumber", job.latitude or 0, job.longitude or 0, 10, date.today())
    assert [c.worker_id for c in nearby] == [worker_id(engine, SURESH)]  # the index leaves Ramesh out
    sms_from(webhook, CITIZEN, "2")
    run_jobs(installed)
    rework = rework_of(engine, job.id or 0)
    assert [o.worker_id for o in offers_of(engine, rework.id or 0)] == [worker_id(engine, SURESH)]


def test_a_worker_whose_police_verification_expired_gets_no_offer(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    lapsed = add_worker(engine, "Lapsed", "+919800000711", 0.5)
    fresh = add_worker(engine, "Fresh", "+919800000712", 1.5)
    valid_days = installed.settings.workers_quality.police_verification_valid_days
    with session_scope(engine) as session:
        today = datetime.now(UTC).date()
        session.execute(
            sa.update(Worker)
            .where(col(Worker.id) == lapsed)
            .values(police_verified_on=today - timedelta(days=valid_days))
        )
        session.execute(sa.update(Worker).where(col(Worker.id) == fresh).values(police_verified_on=today))
    jobs.rebuild_index()
    gpo = request_of(engine, add_request(engine))
    nearby = geoindex.nearby(installed.redis, "plumber", gpo.latitude or 0, gpo.longitude or 0, 10, date.today())
    assert [c.worker_id for c in nearby] == [fresh]  # the index leaves the lapsed worker out
    jobs.reindex_worker(lapsed)  # and so does a change to them
    nearby = geoindex.nearby(installed.redis, "plumber", gpo.latitude or 0, gpo.longitude or 0, 10, date.today())
    assert [c.worker_id for c in nearby] == [fresh]
    jobs.dispatch_request(gpo.id or 0)
    assert [o.worker_id for o in offers_of(engine, gpo.id or 0)] == [fresh]


def test_the_agency_is_reminded_once_by_sms_before_a_verification_expires(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    rules = installed.settings.workers_quality
    today = date(2026, 12, 3)
    with session_scope(engine) as session:
        agency = Provider(name="Lucknow Seva Agency", district="LUCKNOW", phone="+919811100001")
        session.add(agency)
    soon = add_worker(engine, "Soon", "+919800000721", 1.0)
    later = add_worker(engine, "Later", "+919800000722", 1.0)
    with session_scope(engine) as session:
        for worker, days_ago in (
            (soon, rules.police_verification_valid_days - 10),  # expires in 10 days
            (later, rules.police_verification_valid_days - 60),  # in 60: not yet
        ):
            session.execute(
                sa.update(Worker)
                .where(col(Worker.id) == worker)
                .values(provider_id=agency.id, police_verified_on=today - timedelta(days=days_ago))
            )
    clock = FrozenClock(datetime(2026, 12, 3, 4, 0, tzinfo=UTC))
    install(JobContext(installed.settings, engine, installed.redis, installed.telephony, clock))
    try:
        assert jobs.remind_verification_expiry() == {"reminded": 1}
        assert jobs.remind_verification_expiry() == {"reminded": 0}  # the nightly run again: once per expiry
        clock.advance(timedelta(days=1))
        assert jobs.remind_verification_expiry() == {"reminded": 0}
    finally:
        install(installed)
    [reminder] = texts_to(sandbox, "+919811100001")
    assert "Soon का पुलिस सत्यापन 13-12-2026 को समाप्त होगा" in reminder
    assert "9800000721" not in reminder


def test_the_worker_ringing_in_hears_the_rework_names_the_job_it_redoes_and_takes_it(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    job = done_job(installed, engine, webhook)
    sms_from(webhook, CITIZEN, "2")
    run_jobs(installed)
    rework = rework_of(engine, job.id or 0)
    transcript = simulator(webhook, from_number=RAMESH).run("1")
    assert not transcript.errors
    assert transcript.said("के लिए दोबारा जाना है")
    assert transcript.said("काम आपका है।")
    taken = request_of(engine, rework.id or 0)
    assert (taken.status, taken.worker_id) == (RequestStatus.ASSIGNED, worker_id(engine, RAMESH))
