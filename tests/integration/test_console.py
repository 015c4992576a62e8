"""The console as agents, supervisors and agencies use it, against the real app, a real database
of each kind, the real Redis, and the Twilio sandbox: signing in, the live queue, the caller's
screen, requests and what agents do to them, the worklist, and the security around all of it."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select
from werkzeug.routing import IntegerConverter
from werkzeug.test import TestResponse

from console.web import PUBLIC_ENDPOINTS
from core.settings import Settings
from devtools.simulator import CallSimulator, Dialed, FlaskTransport
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs
from dispatch.queues import QueueName, queue
from sewamitra.app import create_app
from storage import callqueue
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CallbackRequest,
    CallbackStatus,
    Caller,
    CallLog,
    Offer,
    OfferStatus,
    RequestStatus,
    Role,
    ServiceRequest,
    User,
)
from tests.console import Console, add_user, page, rows
from tests.factories import (
    ALWAYS_OPEN,
    AUTH_TOKEN,
    CITIZEN,
    PUBLIC_URL,
    add_request,
    add_worker,
    answer_our_call,
    engine_of,
    queue_wait_form,
    run_jobs,
    signed_post,
    with_hours,
)

DESK_PHONE = "+919811112222"
CALL_SID = "CA" + "1" * 32


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def agent(app: Flask) -> Console:
    add_user(engine_of(app), "asha", Role.AGENT, phone=DESK_PHONE)
    console = Console(app)
    console.sign_in("asha")
    console.post("/console/agent/ready")  # ready for callers (an agent signs in not ready)
    return console


@pytest.fixture
def supervisor(app: Flask) -> Console:
    add_user(engine_of(app), "vikram", Role.SUPERVISOR)
    console = Console(app)
    console.sign_in("vikram")
    return console


def hire(app: Flask, name: str, phone: str, km_north: float, **kwargs: object) -> int:
    """A worker joins and the dispatch index learns of them, as after an import."""
    worker_id = add_worker(engine_of(app), name, phone, km_north, **kwargs)  # type: ignore[arg-type]
    queue(app.extensions["sewamitra"].redis, QueueName.DISPATCH).enqueue(jobs.rebuild_index)
    return worker_id


def file_request(app: Flask, **kwargs: object) -> str:
    """A request comes in on the phone line and is queued for dispatch; its number."""
    request_id = add_request(engine_of(app), **kwargs)  # type: ignore[arg-type]
    queue(app.extensions["sewamitra"].redis, QueueName.DISPATCH).enqueue(jobs.dispatch_request, request_id)
    return _stored_number(app, request_id)


def caller_waits(app: Flask, call_sid: str = CALL_SID, phone: str = CITIZEN, queue_time: int = 40) -> None:
    """Twilio fetches the queue's waitUrl for a caller on hold, as it does every half minute."""
    form = queue_wait_form(call_sid, phone, queue_time)
    assert signed_post(app.test_client(), "/twilio/voice/queue/wait", form).status_code == 200


def request_number(response: TestResponse) -> str:
    found = re.search(r"/console/requests/(\d{7})$", response.headers["Location"])
    assert found, response.headers.get("Location")
    return found.group(1)


def form_id(html: str) -> str:
    found = re.search(r'name="form_id" value="([^"]+)"', html)
    assert found
    return found.group(1)


def audit_actions(app: Flask) -> list[str]:
    return [e.action for e in rows(app, AuditEvent)]


# -- signing in ---------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_and_recorded(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    console = Console(app)
    response = console.sign_in("asha", "not the password")
    assert response.status_code == 401
    assert "Wrong user name or password." in page(response)
    assert console.get("/console/requests").status_code == 302
    assert "user.sign_in_failed" in audit_actions(app)


def test_an_unknown_user_name_gets_the_same_answer_as_a_wrong_password(app: Flask) -> None:
    response = Console(app).sign_in("nobody", "whatever it is")
    assert response.status_code == 401
    assert "Wrong user name or password." in page(response)


def test_an_agent_signs_in_and_lands_on_the_live_queue(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    response = Console(app).sign_in("asha")
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/queue"
    assert "user.signed_in" in audit_actions(app)
    [user] = rows(app, User)
    assert user.last_login_at is not None


def test_after_five_wrong_passwords_even_the_right_one_waits(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    console = Console(app)
    for _ in range(5):
        assert console.sign_in("asha", "guess guess guess").status_code == 401
    assert console.sign_in("asha").status_code == 429
    assert "user.sign_in_paused" in audit_actions(app)


def test_a_session_idle_past_the_timeout_is_signed_out(agent: Console) -> None:
    assert agent.get("/console/queue").status_code == 200
    with agent.client.session_transaction() as session:
        session["seen"] = time.time() - 31 * 60
    response = agent.get("/console/queue")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/sign-in")


def test_the_live_queue_refreshing_itself_does_not_keep_an_idle_desk_signed_in(agent: Console) -> None:
    with agent.client.session_transaction() as session:
        session["seen"] = time.time() - 29 * 60
    assert agent.get("/console/queue/board", headers={"X-Live": "1"}).status_code == 200
    with agent.client.session_transaction() as session:
        session["seen"] -= 2 * 60  # two more minutes pass with nobody at the desk
    assert agent.get("/console/queue/board", headers={"X-Live": "1"}).status_code == 302


def test_signing_out_ends_every_copy_of_the_session(app: Flask, agent: Console) -> None:
    cookie = agent.client.get_cookie("session")
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    assert copy.get("/console/queue").status_code == 200
    agent.post("/console/sign-out")
    assert copy.get("/console/queue").status_code == 302


def test_a_deactivated_user_is_signed_out_at_the_next_page(app: Flask, agent: Console) -> None:
    with session_scope(engine_of(app)) as session:
        session.execute(sa.update(User).values(active=False))
    assert agent.get("/console/queue").status_code == 302


def test_sign_in_does_not_return_to_another_site(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    console = Console(app)
    console.get("/console/sign-in")
    response = console.post(
        "/console/sign-in", {"username": "asha", "password": "correct horse battery", "next": "//evil.example/console"}
    )
    assert response.headers["Location"] == "/console/"


def test_the_session_cookie_is_http_only_same_site_and_secure_behind_https(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    response = Console(app).sign_in("asha")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_console_pages_carry_security_headers(agent: Console) -> None:
    for path in ("/console/queue", "/console/no-such-page", "/console/sign-in"):
        headers = agent.get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
        assert "max-age" in headers["Strict-Transport-Security"]


# -- security, route by route -------------------------------------------------------------------------


def console_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, a URL for it) of every console route but signing in and static files."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console") or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        values: dict[str, Any] = {
            arg: 1 if isinstance(rule._converters[arg], IntegerConverter) else "1234567" for arg in rule.arguments
        }
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **values)
        found += [(rule.endpoint, method, url) for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return found


def test_every_console_route_without_a_session_redirects_to_sign_in(app: Flask) -> None:
    routes = console_routes(app)
    assert len(routes) > 25
    client = app.test_client()
    for endpoint, method, url in routes:
        response = client.open(url, method=method)
        assert response.status_code == 302, (endpoint, method, response.status_code)
        assert response.headers["Location"].startswith("/console/sign-in"), endpoint


def test_every_console_view_states_the_roles_that_may_use_it(app: Flask) -> None:
    unguarded = [
        endpoint
        for endpoint, _method, _url in console_routes(app)
        if endpoint not in ("console.home", "console.auth.sign_out")
        and not hasattr(app.view_functions[endpoint], "roles")
    ]
    assert unguarded == []


@pytest.mark.parametrize("role", list(Role))
def test_every_route_answers_the_roles_it_names_refuses_the_others_and_sends_security_headers(
    app: Flask, role: Role
) -> None:
    """The whole matrix, route by route, for each role: named, answered (never 403); not named, 403
    and an audit event; either way with the console's security headers."""
    add_user(engine_of(app), "someone", role, provider="Gomti Services" if role is Role.PROVIDER else None)
    console = Console(app)
    console.sign_in("someone")
    answered = refused = 0
    for endpoint, method, url in console_routes(app):
        roles = getattr(app.view_functions[endpoint], "roles", None)
        if roles is None:
            continue  # home and sign-out: every signed-in user's
        response = console.post(url) if method == "POST" else console.get(url)
        assert (response.status_code == 403) is (role not in roles), (endpoint, method, response.status_code)
        assert response.headers["X-Frame-Options"] == "DENY", (endpoint, method)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], (endpoint, method)
        assert response.headers["Cache-Control"] == "no-store", (endpoint, method)
        answered, refused = answered + (role in roles), refused + (role not in roles)
    assert answered > 0
    assert (refused > 0) is (role is not Role.ADMIN)  # admins use every page; supervisors all but /console/users
    assert ("access.refused" in audit_actions(app)) is (refused > 0)


def test_a_forged_post_without_the_token_changes_nothing(app: Flask, agent: Console) -> None:
    number = _stored_number(app, add_request(engine_of(app)))
    response = agent.client.post(f"/console/requests/{number}/note", data={"note": "forged"})
    assert response.status_code == 403
    response = agent.client.post(f"/console/requests/{number}/note", data={"note": "forged", "csrf_token": "x" * 43})
    assert response.status_code == 403
    assert "request.note" not in audit_actions(app)
    assert audit_actions(app).count("csrf.refused") == 2


def _stored_number(app: Flask, request_id: int) -> str:
    with Session(engine_of(app)) as session:
        found = session.get(ServiceRequest, request_id)
        assert found is not None
        return found.number


# -- the live queue -----------------------------------------------------------------------------------


def test_a_caller_on_hold_shows_in_the_live_queue_with_their_wait(app: Flask, agent: Console) -> None:
    assert "Nobody is waiting." in page(agent.get("/console/queue/board"))
    caller_waits(app, queue_time=75)
    board = page(agent.get("/console/queue/board"))
    assert CITIZEN in board
    assert "1 min 1" in board


def test_taking_the_next_caller_rings_the_desk_phone_which_joins_the_callers_room(
    app: Flask, agent: Console, sandbox: TwilioSandbox
) -> None:
    caller_waits(app)
    response = agent.post("/console/queue/take")
    assert response.headers["Location"] == f"/console/callers/call/{CALL_SID}"
    run_jobs(app)
    [ring] = sandbox.calls
    assert ring["to"] == DESK_PHONE
    assert ring["url"].startswith(f"{PUBLIC_URL}/twilio/voice/agent?user=")

    # The agent picks up and presses 1 (voicemail would not): their leg goes into the caller's room,
    # and the caller is moved there at once by Twilio's REST API (a new Url for their call).
    transcript = answer_our_call(app.test_client(), ring, "1")
    assert transcript.said("to talk to the next caller, press 1")
    assert Dialed(CALL_SID, "conference") in transcript.events
    [move] = sandbox.control
    assert (move["action"], move["call"]) == ("call.update", CALL_SID)
    assert move["params"]["Url"] == f"{PUBLIC_URL}/twilio/voice/queue/connect"

    # Twilio runs the caller's call at that URL: into the room; the agent's screen links to them.
    said = signed_post(app.test_client(), "/twilio/voice/queue/connect", {"CallSid": CALL_SID, "From": CITIZEN})
    assert f'<Conference endConferenceOnExit="true">{CALL_SID}</Conference>' in page(said)
    board = page(agent.get("/console/queue/board"))
    assert "Nobody is waiting." in board
    assert f"/console/callers/call/{CALL_SID}" in board

    # Twilio tells the Enqueue's action the caller was redirected out of its queue: nothing changes.
    signed_post(
        app.test_client(),
        "/twilio/voice/queue/result",
        {"CallSid": CALL_SID, "From": CITIZEN, "QueueResult": "redirected", "QueueTime": "50"},
    )
    [log] = [row for row in rows(app, CallLog) if row.call_sid == CALL_SID]
    assert log.queue_result == "bridged"
    assert log.queue_wait_s is not None
    assert 40 <= log.queue_wait_s < 100  # as the helpline counted it from the wait it was told


def test_a_desk_phone_nobody_answers_frees_the_caller_for_another_agent(app: Flask, agent: Console) -> None:
    caller_waits(app)
    agent.post("/console/queue/take")
    assert "Taken" in page(agent.get("/console/queue/board"))
    connection = app.extensions["sewamitra"].redis
    later = time.time() + callqueue.CLAIM_TTL_S + 1
    [entry] = callqueue.waiting(connection, later)
    assert entry.claimed_by is None
    assert callqueue.claim_next(connection, 99, later) is not None


def test_voicemail_answering_the_desk_phone_takes_no_caller(app: Flask, agent: Console, sandbox: TwilioSandbox) -> None:
    caller_waits(app)
    agent.post("/console/queue/take")
    run_jobs(app)
    [ring] = sandbox.calls
    transcript = answer_our_call(app.test_client(), ring, "-")  # a recorded greeting, no key
    assert not any(isinstance(event, Dialed) for event in transcript.events)
    assert transcript.said("No key was pressed, so the caller stays in the queue.")


def test_two_agents_never_take_the_same_caller(app: Flask, agent: Console) -> None:
    add_user(engine_of(app), "ravi", Role.AGENT, phone="+919811113333")
    other = Console(app)
    other.sign_in("ravi")
    other.post("/console/agent/ready")
    caller_waits(app)
    assert agent.post("/console/queue/take").headers["Location"].endswith(CALL_SID)
    assert other.post("/console/queue/take").headers["Location"] == "/console/queue"
    assert "Nobody is waiting." in page(other.get("/console/queue"))


def test_an_agent_without_a_desk_phone_is_told_how_to_get_one(app: Flask) -> None:
    add_user(engine_of(app), "nophone", Role.AGENT)
    console = Console(app)
    console.sign_in("nophone")
    caller_waits(app)
    response = console.post("/console/queue/take", follow_redirects=True)
    assert "no desk phone" in page(response)


def test_callbacks_and_escalated_requests_wait_on_the_board(app: Flask, agent: Console) -> None:
    request_id = add_request(engine_of(app))
    with session_scope(engine_of(app)) as session:
        session.execute(sa.update(ServiceRequest).values(status=RequestStatus.ESCALATED))
        session.add(CallbackRequest(phone=CITIZEN, reason="left_queue", language="hi"))
    board = page(agent.get("/console/queue/board"))
    assert _stored_number(app, request_id) in board
    assert "Left the queue" in board
    # A callback is worked on the callbacks list (a try, its outcome and note), not closed from here.
    [callback] = rows(app, CallbackRequest)
    assert f'<a href="/console/callbacks#callback-{callback.id}" id="call-back-{callback.id}">Call back</a>' in board
    assert "Mark done" not in board
    assert agent.post(f"/console/queue/callbacks/{callback.id}", {"outcome": "done"}).status_code in (404, 405)
    [callback] = rows(app, CallbackRequest)
    assert callback.status is CallbackStatus.PENDING


# -- the caller's screen and a new request ------------------------------------------------------------


def test_the_form_is_prefilled_with_what_the_caller_keyed_before_pressing_zero(app: Flask, agent: Console) -> None:
    transport = FlaskTransport(app.test_client(), PUBLIC_URL, AUTH_TOKEN)
    transcript = CallSimulator(transport, public_url=PUBLIC_URL, from_number=CITIZEN).run("2,1,1,226001#,0,-,agent")
    assert not transcript.errors
    screen = agent.get(agent.get(f"/console/callers/call/{transcript.call_sid}").headers["Location"])
    html = page(screen)
    assert CITIZEN in html
    assert '<option value="plumber" selected>' in html
    assert 'value="226001"' in html
    assert 'value="Lucknow"' in html


def test_an_agent_books_a_plumber_for_the_caller_and_it_is_dispatched(
    app: Flask, agent: Console, sandbox: TwilioSandbox
) -> None:
    worker_id = hire(app, "Ramesh", "+919800000001", km_north=1)
    html = page(agent.get("/console/callers/new"))
    form = {
        "phone": "98765 43210",
        "service": "plumber",
        "pincode": "226001",
        "language": "hi",
        "address_note": "12 Hazratganj, behind the temple",
        "preferred_time": "after 5 pm",
        "form_id": form_id(html),
    }
    response = agent.post("/console/callers/requests", form)
    number = request_number(response)
    assert agent.post("/console/callers/requests", form).headers["Location"].endswith(number)  # a double click

    [made] = rows(app, ServiceRequest)
    assert (made.number, made.channel.value, made.address_note, made.preferred_time) == (
        number,
        "agent",
        "12 Hazratganj, behind the temple",
        "after 5 pm",
    )
    assert made.status is RequestStatus.NEW
    assert f"{number}</a>" in page(agent.get("/console/queue/board"))  # on the live board at once

    run_jobs(app)
    texts = {m["to"]: m["body"] for m in sandbox.messages}
    assert number in texts[CITIZEN]
    assert number in texts["+919800000001"]
    [offer] = rows(app, Offer)
    assert offer.worker_id == worker_id
    detail = page(agent.get(f"/console/requests/{number}"))
    assert "Ramesh" in detail
    assert "request.created" not in detail
    assert "created" in detail


def test_a_bad_form_keeps_what_was_typed_and_says_what_is_wrong(app: Flask, agent: Console) -> None:
    html = page(agent.get("/console/callers/new"))
    response = agent.post(
        "/console/callers/requests",
        {
            "phone": "12",
            "service": "astrologer",
            "pincode": "110001",
            "address_note": "<script>x</script>",
            "form_id": form_id(html),
        },
    )
    assert response.status_code == 400
    html = page(response)
    assert "Not a valid phone number." in html
    assert "Choose a service." in html
    assert "outside the service area" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<script>x" not in html
    assert rows(app, ServiceRequest) == []


def test_the_district_is_filled_in_as_the_pin_code_is_typed(agent: Console) -> None:
    assert agent.get("/console/callers/pincode/226001").json == {
        "found": True,
        "district": "Lucknow",
        "in_service_area": True,
    }
    assert agent.get("/console/callers/pincode/999999").status_code == 404


def test_an_agent_schedules_a_callback_for_tomorrow(app: Flask, agent: Console) -> None:
    add_request(engine_of(app))
    [callback_owner] = rows(app, Caller)
    due = (datetime.now(UTC) + timedelta(days=1)).astimezone().strftime("%Y-%m-%dT%H:%M")
    agent.post(f"/console/callers/{callback_owner.id}/callback", {"due": due, "note": "wants an evening visit"})
    [callback] = rows(app, CallbackRequest)
    assert callback.reason == "agent_scheduled"
    assert callback.due_at is not None
    assert callback.phone == CITIZEN
    agent.post(f"/console/callers/{callback_owner.id}/callback", {"due": "1999-01-01T10:00"})
    assert len(rows(app, CallbackRequest)) == 1


# -- what agents do to a request ----------------------------------------------------------------------


def test_cancelling_needs_a_reason_and_withdraws_the_open_offer(app: Flask, agent: Console) -> None:
    hire(app, "Ramesh", "+919800000001", km_north=1)
    number = file_request(app)
    run_jobs(app)
    agent.post(f"/console/requests/{number}/cancel", {"reason": ""})
    assert rows(app, ServiceRequest)[0].status is RequestStatus.OFFERED
    agent.post(f"/console/requests/{number}/cancel", {"reason": "the citizen fixed it himself"})
    [made] = rows(app, ServiceRequest)
    [offer] = rows(app, Offer)
    assert made.status is RequestStatus.CANCELLED
    assert offer.status is OfferStatus.WITHDRAWN
    assert "the citizen fixed it himself" in page(agent.get(f"/console/requests/{number}"))


def test_an_escalated_request_is_dispatched_again_with_a_fresh_round(app: Flask, agent: Console) -> None:
    number = file_request(app)
    run_jobs(app)  # nobody in range: escalated
    assert rows(app, ServiceRequest)[0].status is RequestStatus.ESCALATED
    hire(app, "Ramesh", "+919800000001", km_north=1)
    agent.post(f"/console/requests/{number}/redispatch")
    run_jobs(app)
    [made] = rows(app, ServiceRequest)
    assert made.status is RequestStatus.OFFERED
    assert made.round_started_at is not None
    assert made.dispatch_round == 1
    [offer] = rows(app, Offer)
    assert offer.dispatch_round == 1
    assert "request.redispatched" in audit_actions(app)


def test_an_agent_assigns_a_verified_worker_but_never_an_unverified_one(
    app: Flask, agent: Console, sandbox: TwilioSandbox
) -> None:
    unverified = add_worker(engine_of(app), "Unverified", "+919800000002", km_north=1, verified=False)
    verified = add_worker(engine_of(app), "Sunita", "+919800000003", km_north=2)
    number = _stored_number(app, add_request(engine_of(app)))
    detail = page(agent.get(f"/console/requests/{number}"))
    assert "Sunita" in detail
    assert "Unverified" not in detail

    refused = agent.post(f"/console/requests/{number}/assign", {"worker": str(unverified)}, follow_redirects=True)
    assert "is not police-verified" in page(refused)
    assert rows(app, ServiceRequest)[0].status is RequestStatus.NEW

    agent.post(f"/console/requests/{number}/assign", {"worker": str(verified)})
    [made] = rows(app, ServiceRequest)
    assert made.status is RequestStatus.ASSIGNED
    assert made.worker_id == verified
    assert made.completion_code
    [offer] = rows(app, Offer)
    assert (offer.status, offer.channel.value) == (OfferStatus.ACCEPTED, "agent")
    run_jobs(app)
    assert {m["to"] for m in sandbox.messages} >= {CITIZEN, "+919800000003"}


def test_an_agent_cannot_hand_a_second_job_to_a_worker_with_one_in_hand(app: Flask, agent: Console) -> None:
    sunita = add_worker(engine_of(app), "Sunita", "+919800000003", km_north=2)
    first, second = (_stored_number(app, add_request(engine_of(app))) for _ in range(2))
    agent.post(f"/console/requests/{first}/assign", {"worker": str(sunita)})

    refused = agent.post(f"/console/requests/{second}/assign", {"worker": str(sunita)}, follow_redirects=True)
    assert f"Sunita already has job {first} in hand" in page(refused)
    requests = {r.number: r for r in rows(app, ServiceRequest)}
    assert (requests[first].status, requests[first].worker_id) == (RequestStatus.ASSIGNED, sunita)
    assert (requests[second].status, requests[second].worker_id) == (RequestStatus.NEW, None)
    assert [o.request_id for o in rows(app, Offer)] == [requests[first].id]  # no offer for the second


def test_notes_and_the_whole_story_are_on_the_timeline(app: Flask, agent: Console) -> None:
    number = file_request(app)
    agent.post(f"/console/requests/{number}/note", {"note": "citizen asks for a woman worker"})
    run_jobs(app)
    timeline = page(agent.get(f"/console/requests/{number}"))
    assert "citizen asks for a woman worker" in timeline
    assert "escalated" in timeline


def test_unknown_and_malformed_numbers_and_ids_are_404(agent: Console) -> None:
    assert agent.get("/console/requests/1234567").status_code == 404
    assert agent.get("/console/requests/abc").status_code == 404
    assert agent.post("/console/requests/abc/note", {"note": "x"}).status_code == 404
    assert agent.get("/console/callers/99999999999").status_code == 404  # past PostgreSQL's integer
    assert agent.get("/console/workers/99999999999").status_code == 404
    assert agent.get("/console/callers/call/not-a-call-sid").status_code == 404


# -- lists, filters, export ---------------------------------------------------------------------------


def test_requests_are_found_by_the_callers_phone_and_filtered(app: Flask, supervisor: Console) -> None:
    number = _stored_number(app, add_request(engine_of(app)))
    assert number in page(supervisor.get("/console/requests?q=098765%2043210"))
    assert number not in page(supervisor.get("/console/requests?q=9812345678"))
    assert number in page(supervisor.get("/console/requests?district=LUCKNOW&status=new"))
    assert number not in page(supervisor.get("/console/requests?district=AGRA"))
    assert supervisor.get("/console/requests?from=not-a-date&page=-4&status=x").status_code == 200


# Both databases: the SLA filter subtracts timestamps (an interval on PostgreSQL, julianday on SQLite).
@pytest.mark.both_databases
def test_a_request_unassigned_past_the_sla_is_listed_as_breached(app: Flask, supervisor: Console) -> None:
    late = _stored_number(app, add_request(engine_of(app), created=datetime.now(UTC) - timedelta(hours=2)))
    fresh = _stored_number(app, add_request(engine_of(app)))
    listed = page(supervisor.get("/console/requests?sla=breached"))
    assert late in listed
    assert fresh not in listed


def test_a_supervisor_exports_requests_with_formulas_defused(app: Flask, supervisor: Console, agent: Console) -> None:
    request_id = add_request(engine_of(app))
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(address_note='=HYPERLINK("http://evil")')
        )
    response = supervisor.get("/console/requests/export.csv?district=LUCKNOW")
    assert response.mimetype == "text/csv"
    assert response.data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel reads Hindi right
    assert response.data.endswith(b"\r\n")
    [header, row] = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"), newline="")))
    assert row[header.index("address_note")].startswith("'=")
    assert row[header.index("caller_phone")] == CITIZEN
    with Session(engine_of(app)) as session:
        created = session.exec(select(ServiceRequest.created_at).where(ServiceRequest.id == request_id)).one()
    local = created.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M:%S")
    assert row[header.index("created_at (Asia/Kolkata)")] == local  # the call centre's clock, named
    assert "requests.exported" in audit_actions(app)
    assert agent.get("/console/requests/export.csv").status_code == 403


def test_an_agency_sees_only_its_own_workers_jobs_with_citizens_masked(app: Flask) -> None:
    ours = add_worker(engine_of(app), "Ramesh", "+919800000001", km_north=1)
    mine, theirs = add_request(engine_of(app)), add_request(engine_of(app))
    add_user(engine_of(app), "gomti", Role.PROVIDER, provider="Gomti Services")
    with session_scope(engine_of(app)) as session:
        provider_id = session.exec(select(User.provider_id).where(User.username == "gomti")).one()
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == mine)
            .values(worker_id=ours, status=RequestStatus.ASSIGNED)
        )
        session.execute(sa.text("UPDATE worker SET provider_id = :p WHERE id = :w"), {"p": provider_id, "w": ours})
    agency = Console(app)
    agency.sign_in("gomti")
    listed = page(agency.get("/console/requests"))
    assert _stored_number(app, mine) in listed
    assert _stored_number(app, theirs) not in listed
    assert CITIZEN not in listed
    assert "+91 98xxxxx210" in listed
    assert agency.get(f"/console/requests/{_stored_number(app, theirs)}").status_code == 403
    assert agency.get(f"/console/requests/{_stored_number(app, mine)}").status_code == 200


# -- the telecaller worklist --------------------------------------------------------------------------


def test_a_low_rating_goes_on_the_worklist_until_the_call_back_is_recorded(app: Flask, agent: Console) -> None:
    number = _stored_number(app, add_request(engine_of(app)))
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest).values(status=RequestStatus.COMPLETED, rating=2, completed_at=datetime.now(UTC))
        )
    assert number in page(agent.get("/console/worklist"))
    agent.post(f"/console/worklist/{number}", {"outcome": "no_answer"})
    assert number in page(agent.get("/console/worklist"))  # not reached: still to call
    agent.post(f"/console/worklist/{number}", {"outcome": "resolved", "note": "worker came back, fixed the tap"})
    assert number not in page(agent.get("/console/worklist"))
    assert "worker came back, fixed the tap" in page(agent.get(f"/console/requests/{number}"))


def test_an_unrated_job_two_hours_after_completion_is_on_the_worklist(app: Flask, agent: Console) -> None:
    old = _stored_number(app, add_request(engine_of(app)))
    with session_scope(engine_of(app)) as session:
        three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
        session.execute(sa.update(ServiceRequest).values(status=RequestStatus.COMPLETED, completed_at=three_hours_ago))
    recent = _stored_number(app, add_request(engine_of(app)))
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.number) == recent)
            .values(status=RequestStatus.COMPLETED, completed_at=datetime.now(UTC))
        )
    listed = page(agent.get("/console/worklist"))
    assert old in listed
    assert recent not in listed


def test_a_feedback_call_nobody_answered_goes_on_the_worklist_at_once(app: Flask, agent: Console) -> None:
    number = _stored_number(app, add_request(engine_of(app)))
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest).values(status=RequestStatus.COMPLETED, completed_at=datetime.now(UTC))
        )
        request_id = session.exec(select(ServiceRequest.id)).one()
    assert number not in page(agent.get("/console/worklist"))
    form = {"CallSid": "CA" + "3" * 32, "To": CITIZEN, "Direction": "outbound-api", "CallStatus": "no-answer"}
    for _ in range(2):  # Twilio retries the status callback
        signed_post(app.test_client(), f"/twilio/voice/status?feedback={request_id}", form)
    assert number in page(agent.get("/console/worklist"))
    assert audit_actions(app).count("feedback.call_unanswered") == 1


def test_an_agency_reading_its_job_sees_neither_the_code_nor_others_workers_nor_the_citizens_number(
    app: Flask, agent: Console, sandbox: TwilioSandbox
) -> None:
    theirs = hire(app, "Sunita Theirs", "+919800000004", km_north=1)
    ours = hire(app, "Ramesh Ours", "+919800000005", km_north=3)
    number = file_request(app)
    run_jobs(app)  # offered to the nearest: the other agency's worker
    add_user(engine_of(app), "gomti", Role.PROVIDER, provider="Gomti Services")
    with session_scope(engine_of(app)) as session:
        provider_id = session.exec(select(User.provider_id).where(User.username == "gomti")).one()
        session.execute(sa.text("UPDATE worker SET provider_id = :p WHERE id = :w"), {"p": provider_id, "w": ours})
    agent.post(f"/console/requests/{number}/assign", {"worker": str(ours)})
    run_jobs(app)  # the assignment SMS: the citizen's number to the worker, the code to the citizen
    [made] = rows(app, ServiceRequest)
    assert made.worker_id == ours
    assert made.completion_code
    assert theirs

    agency = Console(app)
    agency.sign_in("gomti")
    seen = page(agency.get(f"/console/requests/{number}"))
    assert "Ramesh Ours" in seen
    assert "Sunita Theirs" not in seen
    assert CITIZEN not in seen
    assert "asha" not in seen
    assert not shows_code(seen, made.completion_code)
    staff = page(agent.get(f"/console/requests/{number}"))
    assert "Sunita Theirs" in staff
    assert CITIZEN in staff
    assert "••••" in staff
    assert not shows_code(staff, made.completion_code)


def shows_code(html: str, code: str) -> bool:
    """The completion code as a number of its own on the request's timeline."""
    timeline = html.split('id="timeline"', 1)[1].split("</ul>", 1)[0]
    return re.search(rf"(?<!\d){code}(?!\d)", timeline) is not None


def test_hostile_forms_and_query_strings_get_an_answer_never_a_crash(app: Flask, agent: Console) -> None:
    number = file_request(app)
    anonymous = Console(app)
    anonymous.get("/console/sign-in")
    assert anonymous.post("/console/sign-in", {"username": "x\x00y", "password": "p"}).status_code == 400
    assert anonymous.client.post("/console/sign-in", data={"csrf_token": "é", "username": "x"}).status_code == 403
    for path in [
        "/console/requests?to=9999-12-31&from=0001-01-01",
        "/console/requests?page=²",
        "/console/requests?district=%00",
        "/console/requests/export.csv?to=9999-12-31",
    ]:
        assert agent.get(path).status_code in (200, 400, 403), path
    for worker in ("²", "99999999999999999999999", "9999999999"):
        assert agent.post(f"/console/requests/{number}/assign", {"worker": worker}).status_code == 302
    assert agent.post(f"/console/requests/{number}/note", {"note": "a\x00b"}).status_code == 400
    assert agent.post(f"/console/requests/{number}/note", {"note": "x" * 100_000}).status_code == 302
    [note] = [e for e in rows(app, AuditEvent) if e.action == "request.note"]
    assert len(note.reason or "") == 500


def test_behind_a_proxy_the_citizen_facing_address_is_the_one_counted(helpline_settings: Settings) -> None:
    app = create_app(helpline_settings.model_copy(update={"proxy_hops": 1}))
    add_user(engine_of(app), "asha", Role.AGENT)
    console = Console(app)
    console.get("/console/sign-in")
    console.post(
        "/console/sign-in",
        {"username": "asha", "password": "not it at all"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    [failed] = [e for e in rows(app, AuditEvent) if e.action == "user.sign_in_failed"]
    assert failed.detail["ip"] == "203.0.113.9"


def test_cancelling_a_job_in_hand_tells_the_worker_not_to_go(
    app: Flask, agent: Console, sandbox: TwilioSandbox
) -> None:
    worker_id = hire(app, "Ramesh", "+919800000001", km_north=1)
    number = file_request(app)
    agent.post(f"/console/requests/{number}/assign", {"worker": str(worker_id)})
    run_jobs(app)
    sandbox.clear()
    agent.post(f"/console/requests/{number}/cancel", {"reason": "the citizen found someone"})
    run_jobs(app)
    [told] = [m["body"] for m in sandbox.messages if m["to"] == "+919800000001"]
    assert number in told
    assert "रद्द" in told
