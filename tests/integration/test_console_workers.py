"""Workers and providers in the console: an agency onboards its workers (one by form, many by CSV),
a supervisor records the police verification, anyone at the desk marks a worker busy; an agency
never sees another's workers, and a worker the police did not clear is never sent to a home.
Real databases of each kind, real Redis, real RQ jobs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from rq import Queue
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from core import numbers, pincodes
from core.settings import Settings
from dispatch import context, enqueue, geoindex, jobs
from dispatch.queues import QueueName, queue
from dispatch.queues import worker as rq_worker
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    Caller,
    Offer,
    OfferStatus,
    Provider,
    RequestStatus,
    Role,
    ServiceRequest,
    VerificationStatus,
    Worker,
    WorkerSkill,
)
from telephony.twilio.rest import TwilioTelephony
from tests.console import Console, add_user, page
from tests.factories import worker_of

GOMTI = "Gomti Home Services"
KASHI = "Kashi Urban Care"
HEADER = "name,phone,skills,pincode,provider,police_verified,available"
KM_NORTH = 1 / 111.0  # degrees of latitude in a kilometre


def person(app: Flask, engine: sa.Engine, username: str, role: Role, provider: str | None = None) -> Console:
    """A console user of `role` (of agency `provider`), signed in."""
    add_user(engine, username, role, provider=provider)
    console = Console(app)
    console.sign_in(username)
    console.get("/console/workers")  # where they start, and the page whose forms carry the session's token
    return console


def agency(engine: sa.Engine, name: str) -> int:
    with session_scope(engine) as session:
        found = session.exec(select(Provider).where(Provider.name == name)).first()
        if found is None:
            found = Provider(name=name, district="LUCKNOW")
            session.add(found)
            session.flush()
        assert found.id is not None
        return found.id


def add_worker(
    engine: sa.Engine,
    name: str,
    phone: str,
    *,
    provider: str | None = None,
    pincode: str = "226001",
    skills: tuple[str, ...] = ("plumber",),
    verified: bool = True,
    available: bool = True,
    km_north: float = 0.0,
) -> int:
    """A worker already on the register, as a past import would have left them."""
    place = pincodes.lookup(pincode)
    assert place is not None
    assert place.latitude is not None
    assert place.longitude is not None
    provider_id = agency(engine, provider) if provider else None
    with session_scope(engine) as session:
        worker = Worker(
            name=name,
            phone=phone,
            pincode=pincode,
            district=place.district,
            latitude=place.latitude + km_north * KM_NORTH,
            longitude=place.longitude,
            police_verification=VerificationStatus.VERIFIED if verified else VerificationStatus.PENDING,
            available=available,
            provider_id=provider_id,
        )
        session.add(worker)
        session.flush()
        session.add_all(WorkerSkill(worker_id=worker.id, service_code=skill) for skill in skills)  # type: ignore[arg-type]
        assert worker.id is not None
        return worker.id


def worker_by_phone(engine: sa.Engine, phone: str) -> Worker | None:
    with Session(engine) as session:
        return session.exec(select(Worker).where(Worker.phone == phone)).first()


def audit_trail(engine: sa.Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))))


def upload(console: Console, text: str | bytes, filename: str = "workers.csv") -> TestResponse:
    data = text.encode() if isinstance(text, str) else text
    return console.post(
        "/console/workers/import", {"file": (io.BytesIO(data), filename)}, content_type="multipart/form-data"
    )


def onboarding(**fields: object) -> dict[str, object]:
    """What a person types into the form for a good new worker, with `fields` changed."""
    return {
        "name": "Sunil Kumar",
        "phone": "98390 11111",
        "skills": ["plumber", "electrician"],
        "pincode": "226001",
        "language": "hi",
        "service_radius_km": "",
        "origin": "local",
        **fields,
    }


# -- an agency sees its own workers only ------------------------------------------------------------


def test_an_agency_lists_only_its_own_workers(app: Flask, engine: sa.Engine) -> None:
    add_worker(engine, "Ramesh Yadav", "+919839012345", provider=GOMTI)
    add_worker(engine, "Sunita Devi", "+919415067890", provider=KASHI, pincode="221001")
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)

    listed = page(gomti.get("/console/workers"))
    searched = page(gomti.get("/console/workers?q=Sunita"))

    assert "Ramesh Yadav" in listed
    assert "+919839012345" in listed
    assert "Sunita Devi" not in listed
    assert "Sunita Devi" not in searched
    assert "Varanasi" not in listed  # not even another agency's district appears in the filter


def test_an_agency_cannot_open_or_change_another_agencys_worker(app: Flask, engine: sa.Engine) -> None:
    sunita = add_worker(engine, "Sunita Devi", "+919415067890", provider=KASHI, pincode="221001")
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)

    assert gomti.get(f"/console/workers/{sunita}").status_code == 403
    assert gomti.post(f"/console/workers/{sunita}/availability", {"available": "no"}).status_code == 403
    assert gomti.post(f"/console/workers/{sunita}/deactivate", {"reason": "not ours"}).status_code == 403

    unchanged = worker_of(engine, sunita)
    assert unchanged.available
    assert unchanged.active
    assert len(audit_trail(engine, "access.refused")) == 3


def test_an_agency_sees_its_workers_jobs_with_the_citizens_number_masked(app: Flask, engine: sa.Engine) -> None:
    ramesh = add_worker(engine, "Ramesh Yadav", "+919839012345", provider=GOMTI)
    with session_scope(engine) as session:
        caller = Caller(phone="+919876543210")
        session.add(caller)
        session.flush()
        session.add(
            ServiceRequest(
                number=numbers.new_request_number(),
                service_code="plumber",
                pincode="226001",
                district="LUCKNOW",
                caller_id=caller.id,
                worker_id=ramesh,
                status=RequestStatus.COMPLETED,
                rating=5,
            )
        )
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)
    agent = person(app, engine, "asha.agent", Role.AGENT)

    assert "+91 98xxxxx210" in page(gomti.get(f"/console/workers/{ramesh}"))
    assert "+919876543210" not in page(gomti.get(f"/console/workers/{ramesh}"))
    assert "+919876543210" in page(agent.get(f"/console/workers/{ramesh}"))


# -- police verification ----------------------------------------------------------------------------


def test_a_supervisor_records_the_police_verification(app: Flask, engine: sa.Engine) -> None:
    sunil = add_worker(engine, "Sunil Kumar", "+919839011111", provider=GOMTI, verified=False)
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    assert "Sunil Kumar" in page(supervisor.get("/console/workers?verification=pending"))

    verdict = {"outcome": "verified", "reference": "LKO/PV/2026/0412", "verified_on": "2026-01-15"}
    answer = supervisor.post(f"/console/workers/{sunil}/verification", verdict)

    assert answer.status_code == 302
    cleared = worker_of(engine, sunil)
    assert cleared.police_verification is VerificationStatus.VERIFIED
    assert (cleared.police_reference, cleared.police_verified_on) == ("LKO/PV/2026/0412", date(2026, 1, 15))
    [event] = audit_trail(engine, "worker.verified")
    assert (event.entity_id, event.from_status, event.to_status) == (sunil, "pending", "verified")
    assert event.detail["reference"] == "LKO/PV/2026/0412"
    assert "LKO/PV/2026/0412" in page(supervisor.get(f"/console/workers/{sunil}"))
    assert "Sunil Kumar" not in page(supervisor.get("/console/workers?verification=pending"))


def test_a_supervisor_rejects_a_worker_with_the_reason(app: Flask, engine: sa.Engine) -> None:
    sunil = add_worker(engine, "Sunil Kumar", "+919839011111", provider=GOMTI, verified=False)
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)

    supervisor.post(
        f"/console/workers/{sunil}/verification",
        {"outcome": "rejected", "reason": "Address could not be confirmed by the thana"},
    )

    refused = worker_of(engine, sunil)
    assert refused.police_verification is VerificationStatus.REJECTED
    assert refused.police_note == "Address could not be confirmed by the thana"
    [event] = audit_trail(engine, "worker.rejected")
    assert (event.from_status, event.to_status, event.reason) == (
        "pending",
        "rejected",
        "Address could not be confirmed by the thana",
    )
    assert "Address could not be confirmed" in page(supervisor.get(f"/console/workers/{sunil}"))


def test_a_verification_needs_a_reference_a_past_date_or_a_reason(app: Flask, engine: sa.Engine) -> None:
    sunil = add_worker(engine, "Sunil Kumar", "+919839011111", verified=False)
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    path = f"/console/workers/{sunil}/verification"
    tomorrow = (date.today() + timedelta(days=2)).isoformat()

    no_reference = supervisor.post(path, {"outcome": "verified", "reference": " ", "verified_on": "2026-01-15"})
    future = supervisor.post(path, {"outcome": "verified", "reference": "LKO/1", "verified_on": tomorrow})
    no_date = supervisor.post(path, {"outcome": "verified", "reference": "LKO/1", "verified_on": "15/01/2026"})
    too_long = supervisor.post(path, {"outcome": "verified", "reference": "X" * 61, "verified_on": "2026-01-15"})
    no_reason = supervisor.post(path, {"outcome": "rejected", "reason": ""})
    nonsense = supervisor.post(path, {"outcome": "maybe"})

    assert "Write the police verification&#39;s reference number." in page(no_reference)
    assert "cannot be in the future" in page(future)
    assert "Give the date of the verification" in page(no_date)
    assert "at most 60 characters" in page(too_long)
    assert "Write why the police verification was refused." in page(no_reason)
    assert "Choose verified or rejected." in page(nonsense)
    assert {r.status_code for r in (no_reference, future, no_date, too_long, no_reason, nonsense)} == {400}
    assert worker_of(engine, sunil).police_verification is VerificationStatus.PENDING
    assert audit_trail(engine, "worker.verified") == audit_trail(engine, "worker.rejected") == []


def test_only_a_supervisor_or_admin_records_a_verification(app: Flask, engine: sa.Engine) -> None:
    sunil = add_worker(engine, "Sunil Kumar", "+919839011111", provider=GOMTI, verified=False)
    agent = person(app, engine, "asha.agent", Role.AGENT)
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)
    admin = person(app, engine, "state.admin", Role.ADMIN)
    verdict = {"outcome": "verified", "reference": "LKO/PV/1", "verified_on": "2026-01-15"}

    assert agent.post(f"/console/workers/{sunil}/verification", verdict).status_code == 403
    assert gomti.post(f"/console/workers/{sunil}/verification", verdict).status_code == 403
    assert "Record verification" not in page(agent.get(f"/console/workers/{sunil}"))
    assert worker_of(engine, sunil).police_verification is VerificationStatus.PENDING

    assert admin.post(f"/console/workers/{sunil}/verification", verdict).status_code == 302
    assert worker_of(engine, sunil).police_verification is VerificationStatus.VERIFIED


@pytest.fixture
def job_context(helpline_settings: Settings, engine: sa.Engine, redis_client: redis.Redis) -> Iterator[None]:
    """The RQ jobs run here, in the test, against the same database and Redis as the console."""
    context.install(context.JobContext(helpline_settings, engine, redis_client, TwilioTelephony(helpline_settings)))
    yield
    context.install(None)


def test_a_worker_rejected_from_the_console_is_never_offered_a_home_visit(
    app: Flask, engine: sa.Engine, redis_client: redis.Redis, job_context: None
) -> None:
    nearest = add_worker(engine, "Ramesh Yadav", "+919839012345", km_north=0.2)
    farther = add_worker(engine, "Suresh Pal", "+919839012346", km_north=2.0)
    jobs.rebuild_index()
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)

    supervisor.post(
        f"/console/workers/{nearest}/verification", {"outcome": "rejected", "reason": "Criminal record found"}
    )
    rq_worker(redis_client).work(burst=True)  # the reindex the console queued
    with session_scope(engine) as session:
        caller = Caller(phone="+919876543210")
        session.add(caller)
        session.flush()
        request = ServiceRequest(
            number=numbers.new_request_number(),
            service_code="plumber",
            pincode="226001",
            district="LUCKNOW",
            latitude=worker_of(engine, farther).latitude - 2 * KM_NORTH,
            longitude=worker_of(engine, farther).longitude,
            caller_id=caller.id,
        )
        session.add(request)
        session.flush()
        request_id = request.id
    assert request_id is not None
    jobs.dispatch_request(request_id)

    assert redis_client.zscore(geoindex.key("plumber"), str(nearest)) is None
    with Session(engine) as session:
        offered = [offer.worker_id for offer in session.exec(select(Offer).where(Offer.request_id == request_id))]
    assert offered == [farther]


def test_a_worker_rejected_while_asked_loses_the_offer_and_a_job_in_hand_goes_back_to_an_agent(
    app: Flask, engine: sa.Engine, redis_client: redis.Redis, job_context: None
) -> None:
    asked = add_worker(engine, "Ramesh Yadav", "+919839012345", km_north=0.2)
    holding = add_worker(engine, "Suresh Pal", "+919839012346", km_north=2.0)
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    with session_scope(engine) as session:
        offered, in_hand = (
            ServiceRequest(
                number=numbers.new_request_number(),
                service_code="plumber",
                pincode="226001",
                district="LUCKNOW",
                latitude=26.85,
                longitude=80.94,
            )
            for _ in range(2)
        )
        session.add_all([offered, in_hand])
        session.flush()
        offered.status, in_hand.status, in_hand.worker_id = RequestStatus.OFFERED, RequestStatus.ASSIGNED, holding
        in_hand.completion_code = "4321"
        assert offered.id is not None
        assert in_hand.id is not None
        session.add(Offer(request_id=offered.id, worker_id=asked, expires_at=datetime.now(UTC) + timedelta(minutes=5)))
        session.add(Offer(request_id=in_hand.id, worker_id=holding, status=OfferStatus.ACCEPTED))
        offered_id, in_hand_id, in_hand_number = offered.id, in_hand.id, in_hand.number

    supervisor.post(f"/console/workers/{asked}/verification", {"outcome": "rejected", "reason": "Record found"})
    supervisor.post(f"/console/workers/{holding}/deactivate", {"reason": "left the agency"})

    with Session(engine) as session:
        [offer] = session.exec(select(Offer).where(Offer.request_id == offered_id)).all()
        job = session.get(ServiceRequest, in_hand_id)
    assert offer.status is OfferStatus.WITHDRAWN  # a yes from Ramesh now finds it closed
    assert job is not None
    assert job.status is RequestStatus.ESCALATED
    assert job.worker_id is None
    assert job.completion_code is None

    # The agent gives the job to someone else.
    kamla = add_worker(engine, "Kamla Devi", "+919839012347", km_north=0.5)
    supervisor.post(f"/console/requests/{in_hand_number}/assign", {"worker": str(kamla)})
    with Session(engine) as session:
        job = session.get(ServiceRequest, in_hand_id)
    assert job is not None
    assert job.status is RequestStatus.ASSIGNED
    assert job.worker_id == kamla
    # the offered request goes to the next worker: it is due for dispatch, and a job will take it
    assert enqueue.DISPATCH.take(redis_client) == [offered_id]
    queued = [j.func_name for j in queue(redis_client, QueueName.DISPATCH).get_jobs()]
    assert "dispatch.jobs.dispatch_due" in queued


# -- onboarding one worker by form ------------------------------------------------------------------


def test_an_agency_onboards_a_worker_who_waits_for_verification(
    app: Flask, engine: sa.Engine, redis_client: redis.Redis
) -> None:
    gomti_id = agency(engine, GOMTI)
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)
    assert "Add a worker" in page(gomti.get("/console/workers/new"))

    answer = gomti.post("/console/workers/new", onboarding(voice_preferred="yes", certification="RPL under PMKVY"))

    assert answer.status_code == 302
    sunil = worker_by_phone(engine, "+919839011111")
    assert sunil is not None
    assert answer.headers["Location"].endswith(f"/console/workers/{sunil.id}")
    assert (sunil.police_verification, sunil.provider_id, sunil.district) == ("pending", gomti_id, "LUCKNOW")
    assert sunil.voice_preferred
    assert sunil.certification == "RPL under PMKVY"
    with Session(engine) as session:
        skills = session.exec(select(WorkerSkill.service_code).where(WorkerSkill.worker_id == sunil.id)).all()
    assert sorted(skills) == ["electrician", "plumber"]
    [event] = audit_trail(engine, "worker.created")
    assert (event.entity_id, event.to_status) == (sunil.id, "pending")
    queued = Queue("default", connection=redis_client).jobs
    assert [(job.func_name, job.args) for job in queued] == [("dispatch.jobs.reindex_worker", (sunil.id,))]
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    assert "Sunil Kumar" in page(supervisor.get("/console/workers?verification=pending"))


def test_an_agency_cannot_vouch_for_its_worker_or_choose_another_agency(app: Flask, engine: sa.Engine) -> None:
    gomti_id, kashi_id = agency(engine, GOMTI), agency(engine, KASHI)
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)

    gomti.post("/console/workers/new", onboarding(provider_id=str(kashi_id), police_verified="yes"))

    sunil = worker_by_phone(engine, "+919839011111")
    assert sunil is not None
    assert (sunil.provider_id, sunil.police_verification) == (gomti_id, VerificationStatus.PENDING)


def test_the_form_shows_each_mistake_and_keeps_what_was_typed(app: Flask, engine: sa.Engine) -> None:
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)

    answer = supervisor.post(
        "/console/workers/new",
        onboarding(name="Sunil Kumar", phone="12345", skills=[], pincode="110001", service_radius_km="900"),
    )

    shown = page(answer)
    assert answer.status_code == 400
    assert "phone &#39;12345&#39; is not a valid Indian mobile number" in shown
    assert "no skills given" in shown
    assert "pincode 110001 is in DELHI, outside UTTAR PRADESH" in shown
    assert "service_radius_km must be a number of kilometres above 0 and up to 200" in shown
    assert 'value="Sunil Kumar"' in shown
    assert 'value="110001"' in shown
    assert worker_by_phone(engine, "+919839011111") is None
    assert audit_trail(engine, "worker.created") == []


def test_a_phone_number_already_registered_is_refused(app: Flask, engine: sa.Engine) -> None:
    add_worker(engine, "Ramesh Yadav", "+919839011111")
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)

    answer = supervisor.post("/console/workers/new", onboarding(phone="+91 98390 11111"))

    assert answer.status_code == 400
    assert "phone +919839011111 already belongs to a registered worker" in page(answer)


def test_a_supervisor_onboards_into_a_chosen_agency_and_an_agent_cannot_onboard(app: Flask, engine: sa.Engine) -> None:
    kashi_id = agency(engine, KASHI)
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    agent = person(app, engine, "asha.agent", Role.AGENT)

    assert supervisor.post("/console/workers/new", onboarding(provider_id=str(kashi_id))).status_code == 302
    unknown = supervisor.post("/console/workers/new", onboarding(phone="9839011112", provider_id="99999"))

    assert worker_of(engine, worker_by_phone(engine, "+919839011111").id or 0).provider_id == kashi_id  # type: ignore[union-attr]
    assert unknown.status_code == 400
    assert "provider must be one of the agencies in the list" in page(unknown)
    assert agent.get("/console/workers/new").status_code == 403
    assert agent.post("/console/workers/new", onboarding(phone="9839011113")).status_code == 403
    assert worker_by_phone(engine, "+919839011113") is None


# -- many workers by CSV ----------------------------------------------------------------------------


def test_an_agency_uploads_a_file_and_sees_each_refused_row_with_its_reason(
    app: Flask, engine: sa.Engine, redis_client: redis.Redis
) -> None:
    gomti_id = agency(engine, GOMTI)
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)
    text = "\n".join(
        [
            HEADER,
            "Ramesh Yadav,98390 12345,plumber;electrician,226001,,no,yes",
            f"Vinod Pal,98390 12346,plumber,226001,{GOMTI.upper()},no,yes",
            "Kamlesh Verma,12345,plumber,226001,,no,yes",
            f"Sunita Devi,94150 67890,beautician,221001,{KASHI},no,yes",
            "Mohan Lal,94150 67891,painter,226001,,yes,yes",
            "Ramesh Again,98390 12345,plumber,226001,,no,yes",
        ]
    )

    answer = upload(gomti, text)

    shown = page(answer)
    assert answer.status_code == 200
    assert 'Imported: <span class="num">2</span>' in shown
    assert '<td class="num">4</td><td>phone &#39;12345&#39; is not a valid Indian mobile number</td>' in shown
    assert f'<td class="num">5</td><td>provider &#39;{KASHI}&#39; is not your agency' in shown
    assert '<td class="num">6</td><td>police_verified must be no' in shown
    assert '<td class="num">7</td><td>phone +919839012345 is already on row 2</td>' in shown
    imported = [worker_by_phone(engine, phone) for phone in ("+919839012345", "+919839012346")]
    assert [(w.provider_id, w.police_verification) for w in imported if w] == [(gomti_id, "pending")] * 2
    assert worker_by_phone(engine, "+919415067890") is None
    assert worker_by_phone(engine, "+919415067891") is None
    [event] = audit_trail(engine, "workers.imported")
    assert (event.detail["imported"], event.detail["refused"], event.detail["file"]) == (2, 4, "workers.csv")
    assert Queue("dispatch", connection=redis_client).job_ids == ["rebuild-index"]


def test_a_supervisor_uploads_as_the_cli_imports(app: Flask, engine: sa.Engine) -> None:
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    text = "\ufeff" + "\n".join(
        [
            HEADER + ",police_reference,police_verified_on",
            f"Ramesh Yadav,98390 12345,plumber,226001,{GOMTI},yes,yes,LKO/PV/9,2026-01-10",
            "Sunita Devi,94150 67890,welder,221001,,no,yes,,",
        ]
    )

    shown = page(upload(supervisor, text))

    assert 'Imported: <span class="num">1</span>' in shown
    assert GOMTI in shown
    assert "unknown skill &#39;welder&#39;" in shown
    ramesh = worker_by_phone(engine, "+919839012345")
    assert ramesh is not None
    assert ramesh.police_verification is VerificationStatus.VERIFIED


def test_a_file_that_cannot_be_read_is_refused_whole(app: Flask, engine: sa.Engine) -> None:
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    latin1 = (HEADER + "\nRamésh,98390 12345,plumber,226001,,yes,yes\n").encode("latin-1")

    not_utf8 = upload(supervisor, latin1)
    wrong_columns = upload(supervisor, "naam,phone\nRamesh,9839012345\n")
    nothing = supervisor.post("/console/workers/import", {}, content_type="multipart/form-data")

    assert not_utf8.status_code == 400
    assert "not UTF-8 text" in page(not_utf8)
    assert wrong_columns.status_code == 400
    assert "unknown column &#39;naam&#39;" in page(wrong_columns)
    assert nothing.status_code == 400
    assert "Choose a CSV file" in page(nothing)
    assert worker_by_phone(engine, "+919839012345") is None
    assert audit_trail(engine, "workers.imported") == []


def test_a_file_over_the_size_limit_is_refused_with_a_message(app: Flask, engine: sa.Engine) -> None:
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)

    answer = upload(supervisor, HEADER + "\n" + "x" * (2 * 1024 * 1024 + 10))

    assert answer.status_code == 413
    assert "larger than 2 MB" in page(answer)


def test_an_agent_cannot_upload_workers(app: Flask, engine: sa.Engine) -> None:
    agent = person(app, engine, "asha.agent", Role.AGENT)

    answer = upload(agent, HEADER + "\nRamesh Yadav,98390 12345,plumber,226001,,yes,yes\n")

    assert answer.status_code == 403
    assert worker_by_phone(engine, "+919839012345") is None


# -- busy, available, deactivated -------------------------------------------------------------------


def test_an_agent_marks_a_worker_busy_then_available(app: Flask, engine: sa.Engine, redis_client: redis.Redis) -> None:
    ramesh = add_worker(engine, "Ramesh Yadav", "+919839012345")
    agent = person(app, engine, "asha.agent", Role.AGENT)

    agent.post(f"/console/workers/{ramesh}/availability", {"available": "no"})
    assert not worker_of(engine, ramesh).available
    assert "Mark available" in page(agent.get(f"/console/workers/{ramesh}"))
    agent.post(f"/console/workers/{ramesh}/availability", {"available": "yes"})

    assert worker_of(engine, ramesh).available
    moves = [(e.from_status, e.to_status) for e in audit_trail(engine, "worker.availability")]
    assert moves == [("available", "busy"), ("busy", "available")]
    assert len(Queue("default", connection=redis_client).jobs) == 2  # each change reindexed
    assert agent.post(f"/console/workers/{ramesh}/availability", {"available": "perhaps"}).status_code == 400


def test_an_agency_deactivates_its_worker_and_a_supervisor_reactivates(app: Flask, engine: sa.Engine) -> None:
    ramesh = add_worker(engine, "Ramesh Yadav", "+919839012345", provider=GOMTI)
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)
    agent = person(app, engine, "asha.agent", Role.AGENT)
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)

    assert agent.post(f"/console/workers/{ramesh}/deactivate").status_code == 403
    gomti.post(f"/console/workers/{ramesh}/deactivate", {"reason": "Left the agency"})
    assert not worker_of(engine, ramesh).active
    assert gomti.post(f"/console/workers/{ramesh}/reactivate").status_code == 403
    supervisor.post(f"/console/workers/{ramesh}/reactivate")

    assert worker_of(engine, ramesh).active
    [gone] = audit_trail(engine, "worker.deactivated")
    assert (gone.reason, gone.from_status, gone.to_status) == ("Left the agency", "active", "inactive")
    assert len(audit_trail(engine, "worker.reactivated")) == 1
    history = page(supervisor.get(f"/console/workers/{ramesh}"))
    assert "worker.deactivated" in history
    assert "Left the agency" in history
    assert "gomti.office" in history


# -- finding workers --------------------------------------------------------------------------------


def test_the_list_filters_by_district_skill_verification_availability_and_activity(
    app: Flask, engine: sa.Engine
) -> None:
    add_worker(engine, "Ramesh Yadav", "+919839012345", skills=("plumber", "electrician"))
    add_worker(engine, "Sunita Devi", "+919415067890", pincode="221001", skills=("beautician",))
    add_worker(engine, "Vinod Pal", "+919839012346", verified=False, available=False)
    deactivated = add_worker(engine, "Kamlesh Verma", "+919839012347")
    with session_scope(engine) as session:
        session.execute(sa.update(Worker).where(col(Worker.id) == deactivated).values(active=False))
    agent = person(app, engine, "asha.agent", Role.AGENT)

    def names(query: str) -> set[str]:
        shown = page(agent.get(f"/console/workers?{query}"))
        return {n for n in ("Ramesh Yadav", "Sunita Devi", "Vinod Pal", "Kamlesh Verma") if n in shown}

    assert names("district=VARANASI") == {"Sunita Devi"}
    assert names("skill=electrician") == {"Ramesh Yadav"}
    assert names("verification=pending") == {"Vinod Pal"}
    assert names("available=no") == {"Vinod Pal"}
    assert names("active=no") == {"Kamlesh Verma"}
    assert names("district=LUCKNOW&skill=plumber&active=yes&verification=verified") == {"Ramesh Yadav"}
    assert names("q=sunita") == {"Sunita Devi"}
    assert names("q=094150+67890") == {"Sunita Devi"}
    assert names("q=12346") == {"Vinod Pal"}
    assert names("q=%25") == set()  # a wildcard is a character like any other
    assert names("district=NOWHERE&skill=welding&verification=x&available=maybe&page=-3&provider=abc") == {
        "Ramesh Yadav",
        "Sunita Devi",
        "Vinod Pal",
        "Kamlesh Verma",
    }


def test_the_list_pages_fifty_at_a_time(app: Flask, engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        session.add_all(
            Worker(
                name=f"Worker {n:03d}",
                phone=f"+9198390{n:05d}",
                pincode="226001",
                district="LUCKNOW",
                latitude=26.85,
                longitude=80.95,
            )
            for n in range(60)
        )
    agent = person(app, engine, "asha.agent", Role.AGENT)

    first, second = page(agent.get("/console/workers")), page(agent.get("/console/workers?page=2"))
    beyond, absurd = page(agent.get("/console/workers?page=999")), agent.get("/console/workers?page=" + "9" * 30)

    assert "Worker 049" in first
    assert "Worker 050" not in first
    assert "1 / 2" in first
    assert "Worker 050" in second
    assert "Worker 059" in second
    assert "Worker 000" not in second
    assert "Worker 059" in beyond  # past the end: the last page
    assert absurd.status_code == 200
    assert "Worker 000" in page(absurd)


def test_ids_that_do_not_exist_or_do_not_parse_are_not_found(app: Flask, engine: sa.Engine) -> None:
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)

    huge = "9" * 20
    for path in (
        "/console/workers/424242",
        "/console/workers/abc",
        f"/console/workers/{huge}",
        "/console/workers/-1",
        "/console/providers/424242",
        f"/console/providers/{huge}",
    ):
        assert supervisor.get(path).status_code == 404, path
    assert supervisor.post(f"/console/workers/{huge}/availability", {"available": "no"}).status_code == 404
    rejection = {"outcome": "rejected", "reason": "x"}
    assert supervisor.post("/console/workers/424242/verification", rejection).status_code == 404


# -- provider agencies ------------------------------------------------------------------------------


def test_a_supervisor_sees_each_agencys_pool_at_a_glance(app: Flask, engine: sa.Engine) -> None:
    add_worker(engine, "Ramesh Yadav", "+919839012345", provider=GOMTI)
    add_worker(engine, "Vinod Pal", "+919839012346", provider=GOMTI, verified=False)
    add_worker(engine, "Sunita Devi", "+919415067890", provider=KASHI, pincode="221001")
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)
    agent = person(app, engine, "asha.agent", Role.AGENT)

    listed = page(supervisor.get("/console/providers"))
    one = page(supervisor.get(f"/console/providers/{agency(engine, GOMTI)}"))

    assert GOMTI in listed
    assert KASHI in listed
    assert f'provider={agency(engine, GOMTI)}">2</a>' in listed  # two workers, one of them pending
    assert f'provider={agency(engine, GOMTI)}&amp;verification=pending">1</a>' in listed
    assert "gomti.office" in one
    assert "Lucknow" in one
    assert gomti.get("/console/providers").status_code == 403
    assert agent.get(f"/console/providers/{agency(engine, GOMTI)}").status_code == 403


def test_hostile_input_is_refused_or_ignored_never_a_crash(app: Flask, engine: sa.Engine) -> None:
    ramesh = add_worker(engine, "Ramesh Yadav", "+919839012345", provider=GOMTI)
    supervisor = person(app, engine, "meera.supervisor", Role.SUPERVISOR)
    gomti = person(app, engine, "gomti.office", Role.PROVIDER, provider=GOMTI)

    searched = supervisor.get("/console/workers?q=Ram%00esh&district=%00&skill=%27--&provider=1%00")
    nul_reason = gomti.post(f"/console/workers/{ramesh}/deactivate", {"reason": "left\x00 the agency"})
    verdict = {"outcome": "verified", "reference": "LKO\x00/1", "verified_on": "2026-01-15"}
    nul_reference = supervisor.post(f"/console/workers/{ramesh}/verification", verdict)
    typed = onboarding(name="N" * 300, skills=["plumber"] * 500 + ["x"] * 500, certification='=HYPERLINK("x")')
    flood = supervisor.post("/console/workers/new", typed)
    nul_file = upload(gomti, b"name,phone\x00\n", filename="a\x00b.csv")

    # A NUL is no character a person types: the console answers 400 and changes nothing.
    assert searched.status_code == 400
    assert "cannot be read" in page(searched)
    assert nul_reason.status_code == 400
    assert worker_of(engine, ramesh).active
    assert audit_trail(engine, "worker.deactivated") == []
    assert nul_reference.status_code == 400
    assert worker_of(engine, ramesh).police_reference is None
    quoted = supervisor.get("/console/workers?q=Ram&skill=%27--&provider=1x")
    assert quoted.status_code == 200
    assert "Ramesh Yadav" in page(quoted)
    assert flood.status_code == 400
    assert "which a spreadsheet would run as a formula" in page(flood)
    assert nul_file.status_code == 400
    assert "Nothing was imported." in page(nul_file)
