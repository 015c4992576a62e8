"""The escalation ladder as its people live it (UP's IGRS, issue 19), on Twilio and on Plivo, by a
frozen clock: a request nobody resolves climbs from the agency to the district officer to the state
officer, a rung per deadline; the sweeper climbs it, once however often it runs; each rung's people
get an SMS (the request's number and the helpline's, never the citizen's) and find the request on
their console's Escalations list. An officer closes it only after calling the citizen through the
helpline: their own phone rung first, then the citizen, with the helpline's number, recorded; the
recording is played on the request page; the outcome and a note close it. A district officer sees
and acts on their districts' requests only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Callee, Rang, Transcript
from devtools.twilio_sandbox import RECORDING_AUDIO, TwilioSandbox
from dispatch import context, jobs
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CitizenCall,
    CitizenCallStatus,
    Recording,
    RecordingKind,
    RequestStatus,
    Role,
    ServiceRequest,
    User,
    UserDistrict,
)
from storage.users import set_districts
from telephony import telephony
from tests.console import Console, add_user
from tests.factories import (
    ACCOUNT_SID,
    ALWAYS_OPEN,
    CITIZEN,
    PLIVO_AUTH_ID,
    PUBLIC_URL,
    add_request,
    add_worker,
    call_form,
    platform_of,
    run_context_jobs,
    signed_post,
    simulator,
    with_hours,
)

NOW = datetime(2030, 1, 1, 6, 0, tzinfo=UTC)
DAY = timedelta(days=1)
DM_LUCKNOW, DM_AGRA, STATE = "+919811000001", "+919811000002", "+919811000003"
HELPLINE = {"twilio": "+18005550100", "plivo": "918035350100"}
LEVEL_SMS = "1107160000000000060"


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def jobs_context(app: Flask, clock: FrozenClock) -> Iterator[context.JobContext]:
    """The RQ workers' context, on the app's services and its frozen clock."""
    runtime = app.extensions["sewamitra"]
    ctx = context.JobContext(runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings), clock)
    context.install(ctx)
    yield ctx
    context.install(None)


@pytest.fixture
def officers(engine: sa.Engine) -> dict[str, int]:
    """An agency's user, a district officer for Lucknow and one for Agra, a state officer with a
    phone and one without."""
    made = {
        "gomti": add_user(engine, "gomti", Role.PROVIDER, provider="Gomti Services", phone="+919811000009"),
        "dm.lucknow": add_user(engine, "dm.lucknow", Role.DISTRICT_OFFICER, phone=DM_LUCKNOW),
        "dm.agra": add_user(engine, "dm.agra", Role.DISTRICT_OFFICER, phone=DM_AGRA),
        "state": add_user(engine, "state", Role.STATE_OFFICER, phone=STATE),
        "state.nophone": add_user(engine, "state.nophone", Role.STATE_OFFICER),
    }
    with session_scope(engine) as session:
        for name, district in (("dm.lucknow", "LUCKNOW"), ("dm.agra", "AGRA")):
            user_id = made[name].id or 0
            set_districts(session, user_id, Role.DISTRICT_OFFICER, [district], known={"LUCKNOW", "AGRA"}, actor="cli")
        # Lucknow's officer reads and hears English; the others the helpline's first language, Hindi.
        session.execute(sa.update(User).where(col(User.username) == "dm.lucknow").values(language="en"))
    return {name: user.id or 0 for name, user in made.items()}


def signed_in(app: Flask, username: str) -> Console:
    console = Console(app)
    console.sign_in(username)
    return console


def request_now(engine: sa.Engine, request_id: int) -> ServiceRequest:
    with Session(engine) as session:
        found = session.get(ServiceRequest, request_id)
        assert found is not None
        return found


def level_texts(sandbox: TwilioSandbox) -> list[dict[str, str]]:
    return [m for m in sandbox.messages if "your level" in m["body"] or "आपके स्तर" in m["body"]]


def sweep(ctx: context.JobContext) -> dict[str, int]:
    """The scheduler's sweep, then whatever it queued, as the RQ workers would run it."""
    found = jobs.sweep()
    run_context_jobs(ctx)
    return found


def page(console: Console, path: str) -> str:
    return console.get(path).get_data(as_text=True)


def events(engine: sa.Engine, action: AuditAction) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == action.value).order_by(col(AuditEvent.id))
        return list(session.exec(query).all())


# -- the climb ------------------------------------------------------------------------------------------


@pytest.mark.both_databases  # the sweeper's query compares moments in each dialect's SQL
def test_an_unresolved_request_climbs_each_rung_in_its_time_and_each_rungs_people_are_told(
    app: Flask,
    engine: sa.Engine,
    clock: FrozenClock,
    jobs_context: context.JobContext,
    sandbox: TwilioSandbox,
    officers: dict[str, int],
) -> None:
    request_id = add_request(engine, created=NOW)
    number = request_now(engine, request_id).number

    clock.advance(DAY - timedelta(minutes=1))  # within the agency's day to assign it
    assert sweep(jobs_context)["escalation_climbs"] == 0
    assert request_now(engine, request_id).escalation_level == 1
    assert level_texts(sandbox) == []

    clock.advance(timedelta(minutes=1))  # a day unassigned: up to the district officer
    assert sweep(jobs_context)["escalation_climbs"] == 1
    climbed = request_now(engine, request_id)
    assert (climbed.escalation_level, climbed.escalation_level_at) == (2, NOW + DAY)
    [told] = level_texts(sandbox)
    assert told["to"] == DM_LUCKNOW  # not Agra's officer, not the agency, not the state
    assert number in told["body"]
    assert "155330" in told["body"]
    assert "(District officer)" in told["body"]
    assert CITIZEN[-10:] not in told["body"]
    if platform_of(app) == "plivo":
        assert told["dlt_template_id"] == LEVEL_SMS

    lucknow, agra, state = signed_in(app, "dm.lucknow"), signed_in(app, "dm.agra"), signed_in(app, "state")
    assert number in page(lucknow, "/console/escalations")
    assert number not in page(agra, "/console/escalations")
    assert number not in page(state, "/console/escalations")  # the district's rung, not yet the state's

    # The sweeper runs again (and a second copy of the job): nothing climbs twice, nobody is told twice.
    assert sweep(jobs_context)["escalation_climbs"] == 0
    assert jobs.climb_ladder(request_id, 1) == "nothing to climb"
    assert request_now(engine, request_id).escalation_level == 2
    assert len(level_texts(sandbox)) == 1

    clock.advance(DAY)  # a day at the district officer's rung, still unassigned: up to the state
    assert sweep(jobs_context)["escalation_climbs"] == 1
    assert request_now(engine, request_id).escalation_level == 3
    [_, to_state] = level_texts(sandbox)
    assert to_state["to"] == STATE  # the state officer without a phone sees it on the console only
    assert "राज्य अधिकारी" in to_state["body"]
    lucknow, state = signed_in(app, "dm.lucknow"), signed_in(app, "state")  # a day later: signed in again
    assert number in page(state, "/console/escalations")
    assert number in page(signed_in(app, "state.nophone"), "/console/escalations")
    assert number not in page(lucknow, "/console/escalations")  # the state's rung now

    clock.advance(30 * DAY)  # the top rung is the last
    assert sweep(jobs_context)["escalation_climbs"] == 0
    assert request_now(engine, request_id).escalation_level == 3
    state = signed_in(app, "state")

    raised = events(engine, AuditAction.REQUEST_LEVEL_RAISED)
    assert [(e.detail["from_level"], e.detail["to_level"], e.reason) for e in raised] == [
        (1, 2, "unassigned"),
        (2, 3, "unassigned"),
    ]
    timeline = page(state, f"/console/requests/{number}")
    assert "up the escalation ladder (level 1 → 2, District officer): not assigned in time" in timeline
    state.post("/console/language", {"language": "hi", "back": "/console/"})
    in_hindi = page(state, f"/console/requests/{number}")
    assert "एस्केलेशन में ऊपर गया (स्तर 1 → 2, ज़िला अधिकारी): समय पर किसी को नहीं सौंपा" in in_hindi
    assert "एस्केलेशन" in page(state, "/console/escalations")


@pytest.mark.both_databases  # the sweeper's query compares moments in each dialect's SQL
def test_a_job_assigned_in_time_but_not_done_climbs_by_its_resolution_deadline(
    engine: sa.Engine, clock: FrozenClock, jobs_context: context.JobContext, officers: dict[str, int]
) -> None:
    request_id = add_request(engine, created=NOW)
    worker = add_worker(engine, "Ramesh Kumar", "+919812345678", 0.5)
    with session_scope(engine) as session:  # a worker took it within the agency's day
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(status=RequestStatus.ASSIGNED, worker_id=worker, assigned_at=NOW)
        )
    clock.advance(2 * DAY)
    assert sweep(jobs_context)["escalation_climbs"] == 0  # assigned: only the 3-day resolution deadline runs
    clock.advance(DAY)
    assert sweep(jobs_context)["escalation_climbs"] == 1
    [raised] = events(engine, AuditAction.REQUEST_LEVEL_RAISED)
    assert raised.reason == "unresolved"


@pytest.mark.both_databases  # the sweeper's query compares moments in each dialect's SQL
def test_a_completed_request_does_not_climb(
    engine: sa.Engine, clock: FrozenClock, jobs_context: context.JobContext, officers: dict[str, int]
) -> None:
    request_id = add_request(engine, created=NOW)
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(status=RequestStatus.COMPLETED, completed_at=NOW)
        )
    clock.advance(10 * DAY)
    assert sweep(jobs_context)["escalation_climbs"] == 0
    assert request_now(engine, request_id).escalation_level == 1


# -- hostile webhooks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/officer?call=abc", "/officer/answer?call=99999999999", "/officer/dialled"])
def test_an_officer_call_webhook_about_no_call_answers_a_valid_document(
    app: Flask, telephony_platform: str, path: str
) -> None:
    answer = signed_post(
        app.test_client(), f"/{telephony_platform}/voice{path}", call_form(telephony_platform, "7", Digits="1")
    )
    assert answer.status_code == 200
    assert "<Hangup" in answer.get_data(as_text=True)


def test_a_recording_callback_for_no_call_or_without_a_recording_keeps_nothing(
    app: Flask, engine: sa.Engine, telephony_platform: str
) -> None:
    client = app.test_client()
    for path, fields in (
        ("/officer/recorded?call=42", {"RecordingSid": "RE" + "1" * 32, "RecordingUrl": "https://x", "RecordUrl": "x"}),
        ("/officer/recorded?call=x", {}),
        ("/officer/recorded", {"RecordingDuration": "²"}),
    ):
        answer = signed_post(client, f"/{telephony_platform}/voice{path}", call_form(telephony_platform, "8", **fields))
        assert answer.status_code == 204
    with Session(engine) as session:
        assert session.exec(select(Recording)).all() == []


# -- who sees what ----------------------------------------------------------------------------------------


def at_level(engine: sa.Engine, level: int, district: str = "LUCKNOW") -> ServiceRequest:
    request_id = add_request(engine, created=NOW - 2 * DAY)
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(status=RequestStatus.ESCALATED, escalation_level=level, escalation_level_at=NOW, district=district)
        )
    return request_now(engine, request_id)


def test_a_district_officer_is_refused_another_districts_request_and_the_refusal_is_audited(
    app: Flask, engine: sa.Engine, officers: dict[str, int]
) -> None:
    in_agra = at_level(engine, 2, "AGRA")
    lucknow = signed_in(app, "dm.lucknow")
    for response in (
        lucknow.get(f"/console/requests/{in_agra.number}"),
        lucknow.post(f"/console/requests/{in_agra.number}/call-citizen"),
        lucknow.post(f"/console/requests/{in_agra.number}/close-escalation", {"outcome": "resolved", "note": "x"}),
        lucknow.post(f"/console/requests/{in_agra.number}/note", {"note": "looked"}),
    ):
        assert response.status_code == 403
    assert len(events(engine, AuditAction.ACCESS_REFUSED)) == 4
    assert in_agra.number not in page(lucknow, "/console/requests")
    agra = signed_in(app, "dm.agra")
    assert agra.get(f"/console/requests/{in_agra.number}").status_code == 200
    assert in_agra.number in page(agra, "/console/requests")
    with Session(engine) as session:
        assert session.exec(select(CitizenCall)).all() == []
        assert request_now(engine, in_agra.id or 0).status is RequestStatus.ESCALATED


def test_an_escalated_request_cancelled_since_says_so_in_its_escalation_panel(
    app: Flask, engine: sa.Engine, officers: dict[str, int]
) -> None:
    request = at_level(engine, 2)
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest).where(col(ServiceRequest.id) == request.id).values(status=RequestStatus.CANCELLED)
        )
    lucknow = signed_in(app, "dm.lucknow")
    shown = page(lucknow, f"/console/requests/{request.number}")
    panel = shown[shown.index('id="escalation"') :].split("</section>")[0]
    assert "The request is no longer open: nothing is left to do at this level." in panel
    assert "call-citizen" not in panel
    lucknow.post("/console/language", {"language": "hi", "back": f"/console/requests/{request.number}"})
    assert "अनुरोध अब खुला नहीं है" in page(lucknow, f"/console/requests/{request.number}")


def test_a_district_officer_sees_the_dashboards_request_figures_of_their_districts_only(
    app: Flask, engine: sa.Engine, officers: dict[str, int]
) -> None:
    add_request(engine, created=NOW)
    in_agra = add_request(engine, created=NOW)
    with session_scope(engine) as session:
        session.execute(sa.update(ServiceRequest).where(col(ServiceRequest.id) == in_agra).values(district="AGRA"))
    lucknow = page(signed_in(app, "dm.lucknow"), "/console/dashboard")
    assert "<title>Lucknow: 1</title>" in lucknow
    assert "Agra" not in lucknow
    assert "Calls today" not in lucknow  # the helpline's calls are the supervisors' figures
    assert "export.csv" not in lucknow
    state = page(signed_in(app, "state"), "/console/dashboard")
    assert "<title>Lucknow: 1</title>" in state
    assert "<title>Agra: 1</title>" in state


def test_an_admin_gives_a_district_officer_their_districts_on_the_users_screen(app: Flask, engine: sa.Engine) -> None:
    add_user(engine, "root", Role.ADMIN)
    admin = signed_in(app, "root")
    form = {"username": "dm.kanpur", "role": "district_officer", "phone": "98110 00004", "language": "hi"}
    refused = admin.post("/console/users/new", form)
    assert refused.status_code == 400
    assert "A district officer needs at least one district." in refused.get_data(as_text=True)
    made = admin.post("/console/users/new", {**form, "districts": ["KANPUR NAGAR", "LUCKNOW"]})
    assert made.status_code == 200
    assert admin.post("/console/users/new", {**form, "username": "dm.x", "districts": ["ATLANTIS"]}).status_code == 400
    with Session(engine) as session:
        user = session.exec(select(User).where(User.username == "dm.kanpur")).one()
        districts = session.exec(select(UserDistrict.district).where(UserDistrict.user_id == user.id)).all()
    assert (user.role, user.phone, sorted(districts)) == (
        Role.DISTRICT_OFFICER,
        "+919811000004",
        ["KANPUR NAGAR", "LUCKNOW"],
    )
    edit = page(admin, f"/console/users/{user.id}")
    assert 'value="LUCKNOW" checked' in edit


# -- the recorded call, then the close -------------------------------------------------------------------------


def officer_answers(app: Flask, sandbox: TwilioSandbox, keys: str, callee: Callee) -> Transcript:
    """The platform runs the call the helpline placed to the officer's phone: they pick up and key
    `keys`; the citizen's phone does as `callee` says."""
    placed = sandbox.calls[-1]
    plivo = platform_of(app) == "plivo"
    ringing = simulator(
        app.test_client(),
        direction="outbound" if plivo else "outbound-api",
        from_number=placed["from"],
        to_number=placed["to"],
        voice_path=placed["url"].removeprefix(PUBLIC_URL),
        status_path=placed["status_callback"].removeprefix(PUBLIC_URL),
        callee=callee,
        account_sid=PLIVO_AUTH_ID if plivo else ACCOUNT_SID,
        media_url=sandbox.base_url,
    )
    transcript = ringing.run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def test_an_officer_closes_a_request_only_after_an_answered_recorded_call_to_the_citizen(
    app: Flask,
    engine: sa.Engine,
    jobs_context: context.JobContext,
    sandbox: TwilioSandbox,
    officers: dict[str, int],
    telephony_platform: str,
) -> None:
    request = at_level(engine, 2)
    lucknow = signed_in(app, "dm.lucknow")
    shown = page(lucknow, f"/console/requests/{request.number}")
    assert "Call the citizen first: closing needs an answered, recorded call at this level." in shown
    assert 'id="close" disabled' in shown
    assert CITIZEN not in shown  # an officer sees the citizen's number masked
    refused = lucknow.post(
        f"/console/requests/{request.number}/close-escalation", {"outcome": "resolved", "note": "ok"}
    )
    assert refused.status_code == 302
    assert request_now(engine, request.id or 0).status is RequestStatus.ESCALATED

    # First try: the citizen does not pick up. The call is on the page; the close stays refused.
    lucknow.post(f"/console/requests/{request.number}/call-citizen")
    run_context_jobs(jobs_context)
    assert sandbox.calls[-1]["to"] == DM_LUCKNOW  # the officer's own phone rings first
    assert "/voice/officer?call=" in sandbox.calls[-1]["url"]
    assert CITIZEN[-10:] not in sandbox.calls[-1]["url"]
    missed = officer_answers(app, sandbox, "1", Callee("no-answer"))
    assert missed.said("The citizen did not answer.")
    assert 'id="close" disabled' in page(lucknow, f"/console/requests/{request.number}")

    # Second try: the officer presses 1, the citizen answers and they talk 95 s, recorded.
    lucknow.post(f"/console/requests/{request.number}/call-citizen")
    run_context_jobs(jobs_context)
    talked = officer_answers(app, sandbox, "1", Callee("completed", talks=95))
    assert talked.said(f"to call the citizen of request {' '.join(request.number)}, press 1. The call is recorded.")
    assert talked.said("Connecting you to the citizen.")
    citizen = CITIZEN.removeprefix("+") if telephony_platform == "plivo" else CITIZEN
    assert [e for e in talked.events if isinstance(e, Rang)] == [Rang(citizen, HELPLINE[telephony_platform])]
    assert not any(CITIZEN[-10:] in text for text in talked.heard)
    with Session(engine) as session:
        calls = session.exec(select(CitizenCall).order_by(col(CitizenCall.id))).all()
        recordings = session.exec(select(Recording)).all()
    assert [(c.status, c.seconds, c.escalation_level) for c in calls] == [
        (CitizenCallStatus.UNANSWERED, 0, 2),
        (CitizenCallStatus.ANSWERED, 95, 2),
    ]
    [recording] = recordings
    assert (recording.kind, recording.request_id, recording.duration_s) == (RecordingKind.CITIZEN_CALL, request.id, 95)
    assert calls[1].recording_id == recording.id

    shown = page(lucknow, f"/console/requests/{request.number}")
    source = f"/console/requests/{request.number}/citizen-call.mp3"
    assert f'<audio controls preload="none" src="{source}">' in shown
    assert 'id="close" disabled' not in shown
    assert sandbox.base_url not in shown
    played = lucknow.client.get(source)
    assert (played.status_code, played.data) == (200, RECORDING_AUDIO)
    [fetched] = sandbox.recording_requests
    assert (fetched["method"], fetched["recording_id"], fetched["authorized"]) == ("GET", recording.recording_id, True)
    assert signed_in(app, "dm.agra").client.get(source).status_code == 403
    # The spoken address's route never plays the call: an agent finds no spoken address here.
    add_user(engine, "asha", Role.AGENT)
    assert signed_in(app, "asha").client.get(f"/console/requests/{request.number}/address.mp3").status_code == 404

    assert (
        lucknow.post(
            f"/console/requests/{request.number}/close-escalation", {"outcome": "made_up", "note": "ok"}
        ).status_code
        == 302
    )
    assert request_now(engine, request.id or 0).status is RequestStatus.ESCALATED
    lucknow.post(
        f"/console/requests/{request.number}/close-escalation",
        {"outcome": "resolved", "note": "The tap was fixed by the agency; the citizen is satisfied."},
    )
    closed = request_now(engine, request.id or 0)
    assert closed.status is RequestStatus.CLOSED
    [event] = events(engine, AuditAction.REQUEST_ESCALATION_CLOSED)
    assert event.detail["outcome"] == "resolved"
    assert event.detail["citizen_call_id"] == calls[1].id
    assert event.actor == f"user:{officers['dm.lucknow']}"
    assert [e.reason for e in events(engine, AuditAction.REQUEST_CITIZEN_CALL_ENDED)] == ["no_answer", "completed"]


def test_a_call_made_before_the_request_climbed_again_does_not_close_it(
    app: Flask, engine: sa.Engine, jobs_context: context.JobContext, sandbox: TwilioSandbox, officers: dict[str, int]
) -> None:
    request = at_level(engine, 2)
    lucknow = signed_in(app, "dm.lucknow")
    lucknow.post(f"/console/requests/{request.number}/call-citizen")
    run_context_jobs(jobs_context)
    officer_answers(app, sandbox, "1", Callee("completed", talks=30))
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest).where(col(ServiceRequest.id) == request.id).values(escalation_level=3)
        )
    state = signed_in(app, "state")
    assert 'id="close" disabled' in page(state, f"/console/requests/{request.number}")
    state.post(f"/console/requests/{request.number}/close-escalation", {"outcome": "resolved", "note": "ok"})
    assert request_now(engine, request.id or 0).status is RequestStatus.ESCALATED


def test_an_officer_without_a_phone_is_told_and_nothing_is_rung(
    app: Flask, engine: sa.Engine, jobs_context: context.JobContext, sandbox: TwilioSandbox, officers: dict[str, int]
) -> None:
    request = at_level(engine, 3)
    nophone = signed_in(app, "state.nophone")
    answer = nophone.post(f"/console/requests/{request.number}/call-citizen", follow_redirects=True)
    assert "Your user has no phone to ring" in answer.get_data(as_text=True)
    run_context_jobs(jobs_context)
    assert sandbox.calls == []


def test_voicemail_answering_the_officers_phone_rings_no_citizen(
    app: Flask, engine: sa.Engine, jobs_context: context.JobContext, sandbox: TwilioSandbox, officers: dict[str, int]
) -> None:
    request = at_level(engine, 2)
    signed_in(app, "dm.lucknow").post(f"/console/requests/{request.number}/call-citizen")
    run_context_jobs(jobs_context)
    transcript = officer_answers(app, sandbox, "-", Callee("completed", talks=30))
    assert not any(isinstance(e, Rang) for e in transcript.events)
    assert transcript.said("No key was pressed, so the citizen is not called.")


def test_closing_a_job_in_hand_tells_its_worker_they_need_not_go(
    app: Flask, engine: sa.Engine, jobs_context: context.JobContext, sandbox: TwilioSandbox, officers: dict[str, int]
) -> None:
    request = at_level(engine, 2)
    worker = add_worker(engine, "Ramesh Kumar", "+919812345678", 0.5)
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request.id)
            .values(status=RequestStatus.ASSIGNED, worker_id=worker, assigned_at=NOW, completion_code="4321")
        )
    lucknow = signed_in(app, "dm.lucknow")
    lucknow.post(f"/console/requests/{request.number}/call-citizen")
    run_context_jobs(jobs_context)
    officer_answers(app, sandbox, "1", Callee("completed", talks=40))
    lucknow.post(
        f"/console/requests/{request.number}/close-escalation",
        {"outcome": "withdrew", "note": "The citizen had it fixed by a neighbour."},
    )
    run_context_jobs(jobs_context)
    assert request_now(engine, request.id or 0).status is RequestStatus.CLOSED
    [told] = [m for m in sandbox.messages if m["to"] == "+919812345678"]
    assert told["body"] == f"सेवामित्र: काम {request.number} हेल्पलाइन ने बंद कर दिया है। अब आपको वहाँ नहीं जाना है। धन्यवाद।"
    assert jobs.job_closed(request.id or 0, worker) == "told before"  # a second run texts nobody twice
