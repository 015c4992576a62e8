"""The escalation workbench, as an agent and an agency use it, against the real app, database, Redis
and the platform's sandbox: "Dispatch again" says what it will do and never starts a round that
would only escalate again; a round never texts a worker twice about one job, nor asks again one who
said no or let the offer run out; the agent widens the radius, or hands the request to an agency,
which gives it to one of its own workers. The live queue counts every request, the overdue first."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, select

from core import numbers
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs
from dispatch.queues import QueueName, queue
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    OfferStatus,
    Provider,
    RequestStatus,
    Role,
    ServiceRequest,
    SmsLog,
    User,
)
from tests.console import Console, add_user, page, rows
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    add_request,
    add_worker,
    engine_of,
    offers_of,
    run_jobs,
    sms_from,
    with_hours,
)

RAMESH, SUNITA, ASHA = "+919800000001", "+919800000002", "+919800000003"


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def agent(app: Flask) -> Console:
    add_user(engine_of(app), "asha.agent", Role.AGENT)
    console = Console(app)
    console.sign_in("asha.agent")
    return console


def hire(app: Flask, name: str, phone: str, km_north: float) -> int:
    """A worker joins and the dispatch index learns of them."""
    worker_id = add_worker(engine_of(app), name, phone, km_north)
    queue(app.extensions["sewamitra"].redis, QueueName.DISPATCH).enqueue(jobs.rebuild_index)
    return worker_id


def file_request(app: Flask, created: datetime | None = None) -> tuple[int, str]:
    """A request comes in and is queued for dispatch: its id and number."""
    request_id = add_request(engine_of(app), created=created)
    queue(app.extensions["sewamitra"].redis, QueueName.DISPATCH).enqueue(jobs.dispatch_request, request_id)
    return request_id, the_request(app, request_id).number


def the_request(app: Flask, request_id: int) -> ServiceRequest:
    with Session(engine_of(app)) as session:
        found = session.get(ServiceRequest, request_id)
        assert found is not None
        return found


def offer_texts(app: Flask, worker_id: int) -> int:
    """How many offer SMS the worker was sent."""
    return len([m for m in rows(app, SmsLog) if m.template == "offer" and m.worker_id == worker_id])


def actions(app: Flask) -> list[str]:
    return [e.action for e in rows(app, AuditEvent)]


def part(html: str, marker: str) -> str:
    """The element whose attribute is `marker`, up to the end of its line."""
    start = html.index(marker)
    return html[start : html.index("\n", start)]


def upto(html: str, marker: str, end: str) -> str:
    """The element whose attribute is `marker`, to its closing tag `end`."""
    start = html.index(marker)
    return html[start : html.index(end, start)]


def form(html: str, marker: str) -> str:
    return upto(html, marker, "</form>")


def let_run_out(app: Flask, offer_id: int) -> None:
    """The worker does not answer: the offer's time runs out (the job its expiry queues, run now)."""
    queue(app.extensions["sewamitra"].redis, QueueName.DISPATCH).enqueue(
        jobs.expire_offer, offer_id, "no answer in time", True
    )
    run_jobs(app)


# -- dispatch again --------------------------------------------------------------------------------


def test_dispatch_again_with_nobody_in_range_says_why_and_does_not_escalate_again(app: Flask, agent: Console) -> None:
    request_id, number = file_request(app)
    run_jobs(app)  # nobody within 10 km: escalated
    assert the_request(app, request_id).status is RequestStatus.ESCALATED

    html = page(agent.get(f"/console/requests/{number}"))
    assert "No eligible worker within 10 km." in html
    assert re.search(r'<button id="redispatch"\s+disabled', html)

    refused = agent.post(f"/console/requests/{number}/redispatch", follow_redirects=True)
    assert "Nobody to offer it to within this radius" in page(refused)
    run_jobs(app)
    after = the_request(app, request_id)
    assert (after.status, after.dispatch_round) == (RequestStatus.ESCALATED, 0)
    assert actions(app).count("request.escalated") == 1  # not escalated a second time
    assert "request.redispatched" not in actions(app)


def test_a_widened_radius_reaches_a_worker_15_km_away(app: Flask, agent: Console, sandbox: TwilioSandbox) -> None:
    sunita = hire(app, "Sunita", SUNITA, km_north=15)
    request_id, number = file_request(app)
    run_jobs(app)  # her radius is the default 10 km: escalated
    assert the_request(app, request_id).status is RequestStatus.ESCALATED

    html = page(agent.get(f"/console/requests/{number}"))
    assert "No eligible worker within 10 km." in html
    beyond = upto(html, 'id="beyond"', "</p>")
    assert "Sunita, 15.0 km away (Lucknow)" in beyond
    assert f"/console/requests/{number}?radius=20" in beyond  # the next radius that reaches her

    widened = page(agent.get(f"/console/requests/{number}?radius=20"))
    assert "A new round within 20 km offers the job" in widened
    assert "Sunita · 15.0 km" in part(widened, "<ol>")

    agent.post(f"/console/requests/{number}/redispatch", {"radius": "20"})
    run_jobs(app)
    made = the_request(app, request_id)
    assert (made.status, made.round_radius_km, made.dispatch_round) == (RequestStatus.OFFERED, 20.0, 1)
    [offer] = offers_of(engine_of(app), request_id)
    assert offer.worker_id == sunita
    assert number in {m["to"]: m["body"] for m in sandbox.messages}[SUNITA]
    [redispatched] = [e for e in rows(app, AuditEvent) if e.action == "request.redispatched"]
    assert redispatched.detail["radius_km"] == 20.0


def test_no_round_reaches_further_than_the_configured_maximum(app: Flask, agent: Console) -> None:
    hire(app, "Far Away", SUNITA, km_north=80)
    request_id, number = file_request(app)
    run_jobs(app)
    html = page(agent.get(f"/console/requests/{number}?radius=1000"))
    assert "No eligible worker within 50 km." in html  # asked for 1000, allowed 50
    assert "Nobody who could take it within 50 km either." in html
    agent.post(f"/console/requests/{number}/redispatch", {"radius": "1000"})
    assert the_request(app, request_id).dispatch_round == 0


def test_two_rounds_never_offer_twice_to_a_worker_who_declined_or_let_it_run_out(app: Flask, agent: Console) -> None:
    ramesh, sunita = hire(app, "Ramesh", RAMESH, km_north=1), hire(app, "Sunita", SUNITA, km_north=2)
    request_id, number = file_request(app)
    run_jobs(app)
    [first] = offers_of(engine_of(app), request_id)
    assert first.worker_id == ramesh
    sms_from(app.test_client(), RAMESH, "2")  # Ramesh texts no
    run_jobs(app)
    [_, second] = offers_of(engine_of(app), request_id)
    assert second.worker_id == sunita
    let_run_out(app, second.id or 0)  # Sunita does not answer: nobody else near, escalated
    assert the_request(app, request_id).status is RequestStatus.ESCALATED

    html = page(agent.get(f"/console/requests/{number}"))
    assert "No eligible worker within 10 km." in html
    assert "2 in range declined, let the offer run out or hold it" in part(html, 'id="passed-over"')
    agent.post(f"/console/requests/{number}/redispatch")
    assert the_request(app, request_id).dispatch_round == 0  # a round that would ask them again is not started

    asha = hire(app, "Asha", ASHA, km_north=3)
    agent.post(f"/console/requests/{number}/redispatch")
    run_jobs(app)
    offers = offers_of(engine_of(app), request_id)
    assert [(o.worker_id, o.dispatch_round) for o in offers] == [(ramesh, 0), (sunita, 0), (asha, 1)]
    sms_from(app.test_client(), ASHA, "2")  # Asha says no too: the round does not go back to the others
    run_jobs(app)
    assert [o.worker_id for o in offers_of(engine_of(app), request_id)] == [ramesh, sunita, asha]
    assert the_request(app, request_id).status is RequestStatus.ESCALATED
    assert (offer_texts(app, ramesh), offer_texts(app, sunita), offer_texts(app, asha)) == (1, 1, 1)

    agent.post(f"/console/requests/{number}/assign", {"worker": str(ramesh)})  # he agreed on the phone
    assigned = the_request(app, request_id)
    assert (assigned.status, assigned.worker_id) == (RequestStatus.ASSIGNED, ramesh)


def test_dispatch_again_on_an_offered_request_never_texts_the_worker_holding_the_offer_again(
    app: Flask, agent: Console
) -> None:
    ramesh = hire(app, "Ramesh", RAMESH, km_north=1)
    request_id, number = file_request(app)
    run_jobs(app)
    html = page(agent.get(f"/console/requests/{number}"))
    assert "Ramesh holds an open offer until" in part(html, 'id="open-offer"')
    assert "No eligible worker within 10 km." in html  # nobody besides him

    agent.post(f"/console/requests/{number}/redispatch")
    run_jobs(app)
    [offer] = offers_of(engine_of(app), request_id)
    assert (offer.worker_id, offer.status) == (ramesh, OfferStatus.PENDING)  # his offer stands
    assert the_request(app, request_id).dispatch_round == 0
    assert offer_texts(app, ramesh) == 1

    sunita = hire(app, "Sunita", SUNITA, km_north=2)
    agent.post(f"/console/requests/{number}/redispatch")
    run_jobs(app)  # one worker asked at a time (dispatch.parallel_offers): the new round waits for his answer
    made = the_request(app, request_id)
    assert (made.status, made.dispatch_round) == (RequestStatus.OFFERED, 1)
    assert [(o.worker_id, o.status) for o in offers_of(engine_of(app), request_id)] == [(ramesh, OfferStatus.PENDING)]

    sms_from(app.test_client(), RAMESH, "2")  # he says no: the round goes on to Sunita, and never back to him
    run_jobs(app)
    assert [(o.worker_id, o.status, o.dispatch_round) for o in offers_of(engine_of(app), request_id)] == [
        (ramesh, OfferStatus.DECLINED, 0),
        (sunita, OfferStatus.PENDING, 1),
    ]
    assert (offer_texts(app, ramesh), offer_texts(app, sunita)) == (1, 1)


# -- an agency ----------------------------------------------------------------------------------------


def agency_user(app: Flask, username: str, provider: str) -> tuple[Console, int]:
    add_user(engine_of(app), username, Role.PROVIDER, provider=provider)
    with Session(engine_of(app)) as session:
        provider_id = session.exec(select(User.provider_id).where(User.username == username)).one()
    assert provider_id is not None
    console = Console(app)
    console.sign_in(username)
    return console, provider_id


def employ(app: Flask, worker_id: int, provider_id: int) -> None:
    with session_scope(engine_of(app)) as session:
        session.execute(sa.text("UPDATE worker SET provider_id = :p WHERE id = :w"), {"p": provider_id, "w": worker_id})


def test_an_agency_sees_a_request_handed_to_it_and_gives_it_to_its_own_worker_only(app: Flask, agent: Console) -> None:
    gomti, gomti_id = agency_user(app, "gomti", "Gomti Services")
    awadh, awadh_id = agency_user(app, "awadh", "Awadh Services")
    theirs = add_worker(engine_of(app), "Ramesh", RAMESH, km_north=30)  # too far for dispatch
    other = add_worker(engine_of(app), "Sunita", SUNITA, km_north=40)
    employ(app, theirs, gomti_id)
    employ(app, other, awadh_id)
    request_id, number = file_request(app)
    run_jobs(app)
    assert the_request(app, request_id).status is RequestStatus.ESCALATED
    assert number not in page(gomti.get("/console/requests"))
    assert gomti.get(f"/console/requests/{number}").status_code == 403

    html = page(agent.get(f"/console/requests/{number}"))
    assert "Gomti Services" in form(html, 'id="hand"')
    agent.post(
        f"/console/requests/{number}/hand", {"provider": str(gomti_id), "reason": "their man is in Bakshi Ka Talab"}
    )
    handed = the_request(app, request_id)
    assert (handed.status, handed.handed_to_provider_id) == (RequestStatus.ESCALATED, gomti_id)
    [event] = [e for e in rows(app, AuditEvent) if e.action == "request.handed"]
    assert (event.detail["provider_id"], event.reason) == (gomti_id, "their man is in Bakshi Ka Talab")

    assert number in page(gomti.get("/console/requests"))
    assert number in page(gomti.get("/console/requests?handed=agency"))  # those handed to it, apart
    assert number not in page(awadh.get("/console/requests"))
    assert awadh.get(f"/console/requests/{number}").status_code == 403
    screen = page(gomti.get(f"/console/requests/{number}"))
    choices = form(screen, 'id="assign"')
    assert "Ramesh" in choices
    assert "Sunita" not in choices  # another agency's worker
    assert 'id="hand"' not in screen
    assert 'id="redispatch"' not in screen

    assert gomti.post(f"/console/requests/{number}/assign", {"worker": str(other)}).status_code == 403
    assert awadh.post(f"/console/requests/{number}/assign", {"worker": str(other)}).status_code == 403
    assert the_request(app, request_id).status is RequestStatus.ESCALATED
    assert actions(app).count("access.refused") >= 3

    gomti.post(f"/console/requests/{number}/assign", {"worker": str(theirs)})
    done = the_request(app, request_id)
    assert (done.status, done.worker_id) == (RequestStatus.ASSIGNED, theirs)
    [assigned] = [e for e in rows(app, AuditEvent) if e.action == "request.assigned"]
    assert assigned.detail["by"] == "agency"
    assert assigned.actor == f"user:{user_id(app, 'gomti')}"


def test_a_handed_request_the_helpline_gives_to_another_worker_leaves_the_agencys_sight(
    app: Flask, agent: Console
) -> None:
    gomti, gomti_id = agency_user(app, "gomti", "Gomti Services")
    sunita = add_worker(engine_of(app), "Sunita", SUNITA, km_north=30)
    request_id, number = file_request(app)
    run_jobs(app)
    agent.post(f"/console/requests/{number}/hand", {"provider": str(gomti_id)})
    assert gomti.get(f"/console/requests/{number}").status_code == 200
    agent.post(f"/console/requests/{number}/assign", {"worker": str(sunita)})  # she called the helpline first
    assert the_request(app, request_id).worker_id == sunita
    assert gomti.get(f"/console/requests/{number}").status_code == 403
    assert number not in page(gomti.get("/console/requests"))


def test_an_agency_cannot_assign_a_request_not_handed_to_it(app: Flask) -> None:
    gomti, gomti_id = agency_user(app, "gomti", "Gomti Services")
    theirs = add_worker(engine_of(app), "Ramesh", RAMESH, km_north=1)
    employ(app, theirs, gomti_id)
    request_id, number = file_request(app)
    assert gomti.post(f"/console/requests/{number}/assign", {"worker": str(theirs)}).status_code == 403
    assert the_request(app, request_id).worker_id is None


def test_a_request_is_handed_only_to_an_agency_serving_its_district(app: Flask, agent: Console) -> None:
    with session_scope(engine_of(app)) as session:
        agra = Provider(name="Agra Services", district="AGRA")
        session.add(agra)
        session.flush()
        agra_id = agra.id
    request_id, number = file_request(app)
    run_jobs(app)
    assert "Agra Services" not in page(agent.get(f"/console/requests/{number}"))
    refused = agent.post(f"/console/requests/{number}/hand", {"provider": str(agra_id)}, follow_redirects=True)
    assert "That agency does not serve the request&#39;s district." in page(refused)
    assert the_request(app, request_id).handed_to_provider_id is None


def user_id(app: Flask, username: str) -> int:
    with Session(engine_of(app)) as session:
        found = session.exec(select(User.id).where(User.username == username)).one()
    assert found is not None
    return found


# -- the live queue and the lists ---------------------------------------------------------------------


def escalate_all(app: Flask) -> None:
    with session_scope(engine_of(app)) as session:
        session.execute(sa.update(ServiceRequest).values(status=RequestStatus.ESCALATED))


def test_the_board_counts_every_escalated_request_not_only_those_it_shows(app: Flask, agent: Console) -> None:
    now = datetime.now(UTC)
    oldest = add_request(engine_of(app), created=now - timedelta(hours=3))
    for minutes in range(30):
        add_request(engine_of(app), created=now - timedelta(minutes=minutes))
    escalate_all(app)
    board = page(agent.get("/console/queue/board"))
    assert 'id="escalated-count">31<' in board
    assert 'href="/console/requests?status=escalated"' in board
    listed = board[board.index('id="escalated"') : board.index("</table>", board.index('id="escalated"'))]
    assert listed.count("<tr><td") == 25
    first = listed.split("<tr><td")[1]
    assert the_request(app, oldest).number in first  # the longest overdue first
    assert "2 h 00 min" in first  # three hours old, the SLA an hour


def test_the_board_lists_the_requests_past_the_sla_the_longest_overdue_first(app: Flask, agent: Console) -> None:
    now = datetime.now(UTC)
    for minutes in range(27):
        add_request(engine_of(app), created=now - timedelta(minutes=90 + minutes))
    oldest = add_request(engine_of(app), created=now - timedelta(hours=5))
    add_request(engine_of(app), created=now - timedelta(minutes=10))  # within the hour: not late yet
    board = page(agent.get("/console/queue/board"))
    assert 'id="past-sla-count">28<' in board
    assert 'href="/console/requests?sla=breached"' in board
    listed = board[board.index('id="past-sla"') : board.index("</table>", board.index('id="past-sla"'))]
    assert listed.count("<tr><td") == 25
    first = listed.split("<tr><td")[1]
    assert the_request(app, oldest).number in first
    assert "4 h 00 min" in first


def test_the_escalated_and_breached_lists_put_the_longest_overdue_first(app: Flask, agent: Console) -> None:
    now = datetime.now(UTC)
    newer = add_request(engine_of(app), created=now - timedelta(hours=2))
    older = add_request(engine_of(app), created=now - timedelta(hours=5))
    escalate_all(app)
    for query in ("status=escalated", "sla=breached"):
        listed = page(agent.get(f"/console/requests?{query}"))
        assert "Overdue by" in listed
        first, second = the_request(app, older).number, the_request(app, newer).number
        assert listed.index(first) < listed.index(second), query
        assert "4 h 00 min" in listed
        assert "1 h 00 min" in listed
    everything = page(agent.get("/console/requests"))
    assert "Overdue by" not in everything
    assert everything.index(the_request(app, newer).number) < everything.index(the_request(app, older).number)


def test_an_exact_request_number_opens_the_request(app: Flask, agent: Console) -> None:
    request_id = add_request(engine_of(app))
    number = the_request(app, request_id).number
    found = agent.get(f"/console/requests?q={number}")
    assert found.status_code == 302
    assert found.headers["Location"] == f"/console/requests/{number}"
    unknown = numbers.new_request_number()  # a well-formed number of no request: the empty list, not a 404
    assert unknown != number
    assert agent.get(f"/console/requests?q={unknown}").status_code == 200
    assert agent.get(f"/console/requests?q={CITIZEN}").status_code == 200  # a phone number lists


def test_an_agency_searching_another_agencys_request_number_finds_nothing(app: Flask) -> None:
    gomti, _ = agency_user(app, "gomti", "Gomti Services")
    number = the_request(app, add_request(engine_of(app))).number
    response = gomti.get(f"/console/requests?q={number}")
    assert response.status_code == 200
    assert f'href="/console/requests/{number}"' not in page(response)
    assert 'id="request-list"' in page(response)


def test_the_caller_column_links_to_the_callers_history(app: Flask, agent: Console) -> None:
    add_request(engine_of(app))
    with Session(engine_of(app)) as session:
        caller_id = session.exec(select(ServiceRequest.caller_id)).one()
    listed = page(agent.get("/console/requests"))
    assert f'href="/console/callers/{caller_id}" class="caller"' in listed
    assert page(agent.get(f"/console/callers/{caller_id}")).count(CITIZEN) >= 1


def test_the_workbench_and_the_board_read_in_hindi(app: Flask) -> None:
    hire(app, "Sunita", SUNITA, km_north=15)
    request_id, number = file_request(app, created=datetime.now(UTC) - timedelta(hours=3))
    run_jobs(app)
    add_user(engine_of(app), "asha.hindi", Role.AGENT)
    hindi = Console(app)
    hindi.sign_in("asha.hindi")
    hindi.post("/console/language", {"language": "hi", "back": "/console/"})
    html = page(hindi.get(f"/console/requests/{number}"))
    assert "10 कि.मी. के भीतर कोई योग्य कार्यकर्ता नहीं।" in html
    assert "उससे आगे सबसे पास: Sunita, 15.0 कि.मी. दूर (लखनऊ)।" in html
    assert "एजेंसी को सौंपें" in html
    board = page(hindi.get("/console/queue/board"))
    assert "कितनी देर से लंबित" in board
    assert "2 घंटे 00 मिनट" in board
    assert the_request(app, request_id).status is RequestStatus.ESCALATED
