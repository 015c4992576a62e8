"""The reports the state asks for, on real PostgreSQL and SQLite and the real Redis: a seeded set of
requests with known times, the district ranking's figures read off the page and the CSV, an
agency's own report and no other's, the dashboard's district filter, hourly chart and live panel."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import select

from core.clock import FrozenClock
from core.settings import Settings
from sewamitra.app import create_app
from storage import agents, callqueue
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CallLog,
    Direction,
    Offer,
    OfferStatus,
    Provider,
    RequestStatus,
    Role,
    ServiceRequest,
    User,
    Worker,
)
from tests.console import Console, add_user, signed_in
from tests.factories import engine_of

# Both databases: medians over timestamps stored per dialect, and the hourly chart's hour arithmetic
# (PostgreSQL's epoch, SQLite's strftime).
pytestmark = pytest.mark.both_databases

DAY = "2025-03-10"  # in India: 18:30 UTC on the 9th to 18:30 UTC on the 10th
MORNING = datetime(2025, 3, 10, 4, 30, tzinfo=UTC)  # 10:00 in Lucknow
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # 17:30 in Lucknow, the same day
MINUTE = timedelta(minutes=1)
_numbers = count(2000001)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def supervisor(app: Flask) -> Console:
    return signed_in(app, "sunita", Role.SUPERVISOR)


def filed(
    app: Flask,
    district: str,
    *,
    created: datetime = MORNING,
    assigned_after: int | None = None,
    completed_after: int | None = None,
    rating: int | None = None,
    worker_id: int | None = None,
    escalations: int = 0,
    rework_of: int | None = None,
) -> int:
    """A request made at `created`, assigned and completed so many minutes later, rated, escalated so
    often, a rework of another."""
    with session_scope(engine_of(app)) as db:
        request = ServiceRequest(
            number=str(next(_numbers)),
            service_code="plumber",
            pincode="226001",
            district=district,
            status=RequestStatus.COMPLETED if completed_after is not None else RequestStatus.NEW,
            created_at=created,
            assigned_at=created + assigned_after * MINUTE if assigned_after is not None else None,
            completed_at=created + completed_after * MINUTE if completed_after is not None else None,
            rating=rating,
            worker_id=worker_id,
            rework_of_id=rework_of,
        )
        db.add(request)
        db.flush()
        for _ in range(escalations):
            db.add(
                AuditEvent(
                    actor="system",
                    action=AuditAction.REQUEST_ESCALATED.value,
                    entity="service_request",
                    entity_id=request.id,
                    at=created + 30 * MINUTE,
                )
            )
        return request.id or 0


def a_day_in_three_districts(app: Flask) -> None:
    """Lucknow: four requests, two dissatisfied of four rated, two escalated (one twice); Kanpur Nagar:
    one rated 1; Agra: none rated, one a rework of the other. Around them, a request of the day
    before, which does not count."""
    filed(app, "LUCKNOW", assigned_after=10, completed_after=60, rating=1, escalations=2)
    filed(app, "LUCKNOW", assigned_after=20, completed_after=90, rating=2)
    filed(app, "LUCKNOW", assigned_after=40, completed_after=150, rating=5, escalations=1)
    filed(app, "LUCKNOW", assigned_after=50, rating=4)  # rated before completion: still rated
    filed(app, "KANPUR NAGAR", assigned_after=5, completed_after=45, rating=1)
    first_visit = filed(app, "AGRA", assigned_after=30)
    filed(app, "AGRA", rework_of=first_visit)
    filed(app, "LUCKNOW", created=MORNING - timedelta(days=1), assigned_after=1, completed_after=2, rating=1)


def sheet(response_bytes: bytes) -> list[list[str]]:
    assert response_bytes.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark, for Excel
    text = response_bytes.decode("utf-8-sig")
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")  # every row CRLF-terminated
    return list(csv.reader(io.StringIO(text, newline="")))


def test_districts_are_ranked_on_dissatisfaction_with_exact_medians(app: Flask, supervisor: Console) -> None:
    a_day_in_three_districts(app)
    response = supervisor.get(f"/console/reports/districts.csv?from={DAY}&to={DAY}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    [header, *rows] = sheet(response.data)
    assert header == [
        "rank",
        "district",
        "district_hi",
        "requests",
        "median_minutes_to_assignment",
        "median_minutes_to_completion",
        "rated",
        "dissatisfaction_percent",
        "escalated",
        "escalated_by_level",
        "rework_percent",
    ]
    assert rows == [
        ["1", "KANPUR NAGAR", "कानपुर नगर", "1", "5.0", "45.0", "1", "100.0", "0", "", "0.0"],
        # assignment: 10, 20, 40, 50 → 30; completion: 60, 90, 150 → 90; 2 of 4 rated ≤ 2; escalated 2
        # requests, both still on the ladder's first rung
        ["2", "LUCKNOW", "लखनऊ", "4", "30.0", "90.0", "4", "50.0", "2", "L1: 2", "0.0"],
        # nobody rated: ranked after the rated; one of its two requests visits the other's job again
        ["3", "AGRA", "आगरा", "2", "30.0", "", "0", "", "0", "", "50.0"],
    ]


def test_the_ranking_over_a_date_range_takes_in_every_day(app: Flask, supervisor: Console) -> None:
    a_day_in_three_districts(app)
    response = supervisor.get("/console/reports/districts.csv?from=2025-03-09&to=2025-03-10")
    [header, *rows] = sheet(response.data)
    lucknow = next(row for row in rows if row[1] == "LUCKNOW")
    assert lucknow[header.index("requests")] == "5"
    assert lucknow[header.index("dissatisfaction_percent")] == "60.0"  # 3 of 5
    assert lucknow[header.index("median_minutes_to_assignment")] == "20.0"  # 1, 10, 20, 40, 50


def test_the_ranking_page_and_the_dashboard_show_it_in_hindi_too(app: Flask, supervisor: Console) -> None:
    a_day_in_three_districts(app)
    page = supervisor.get(f"/console/reports/districts?from={DAY}&to={DAY}").get_data(as_text=True)
    assert re.search(r"<td class=\"num\">2</td><td>Lucknow</td><td class=\"num\">4</td>", page)
    assert "50.0%" in page
    supervisor.post("/console/language", {"language": "hi", "back": "/console/dashboard"})
    dashboard = supervisor.get(f"/console/dashboard?day={DAY}").get_data(as_text=True)
    assert re.search(r"<td class=\"num\">1</td><td>कानपुर नगर</td>", dashboard)
    assert "ज़िलों की रैंकिंग" in dashboard


def test_only_supervisors_and_admins_see_the_ranking(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    agent = Console(app)
    agent.sign_in("asha")
    assert agent.get("/console/reports/districts").status_code == 403
    assert agent.get("/console/reports/districts.csv").status_code == 403


# -- an agency's report ------------------------------------------------------------------------------


def agency_with_a_worker(app: Flask, name: str, phone: str) -> tuple[int, int]:
    with session_scope(engine_of(app)) as db:
        agency = db.exec(select(Provider).where(Provider.name == name)).first() or Provider(name=name)
        db.add(agency)
        db.flush()
        worker = Worker(
            name=f"{name} worker",
            phone=phone,
            pincode="226001",
            district="LUCKNOW",
            latitude=26.85,
            longitude=80.95,
            provider_id=agency.id,
        )
        db.add(worker)
        db.flush()
        return agency.id or 0, worker.id or 0


def offered(app: Flask, request_id: int, worker_id: int, status: OfferStatus) -> None:
    with session_scope(engine_of(app)) as db:
        db.add(Offer(request_id=request_id, worker_id=worker_id, status=status, created_at=MORNING))


def test_an_agency_sees_its_own_report_and_no_others(app: Flask) -> None:
    add_user(engine_of(app), "gomti", Role.PROVIDER, provider="Gomti Services")
    ours, ramesh = agency_with_a_worker(app, "Gomti Services", "+919800000001")
    theirs, _ = agency_with_a_worker(app, "Saryu Services", "+919800000002")
    filed(app, "LUCKNOW", assigned_after=10, completed_after=70, rating=2, worker_id=ramesh)
    filed(app, "LUCKNOW", assigned_after=30, completed_after=130, rating=5, worker_id=ramesh)
    other = filed(app, "LUCKNOW")
    offered(app, other, ramesh, OfferStatus.DECLINED)
    offered(app, other, ramesh, OfferStatus.EXPIRED)
    offered(app, other, ramesh, OfferStatus.EXPIRED)
    agency = Console(app)
    agency.sign_in("gomti")

    assert agency.get(f"/console/reports/agencies/{theirs}").status_code == 403
    assert agency.get(f"/console/reports/agencies/{theirs}.csv").status_code == 403
    with session_scope(engine_of(app)) as db:
        refused = db.exec(select(AuditEvent).where(AuditEvent.action == AuditAction.ACCESS_REFUSED.value)).all()
    assert {event.detail["path"] for event in refused} == {
        f"/console/reports/agencies/{theirs}",
        f"/console/reports/agencies/{theirs}.csv",
    }

    own = agency.get("/console/reports/agency", query_string={"from": DAY, "to": DAY}, follow_redirects=True)
    assert own.status_code == 200
    assert "Gomti Services" in own.get_data(as_text=True)
    [header, ramesh_line, total] = sheet(agency.get(f"/console/reports/agencies/{ours}.csv?from={DAY}&to={DAY}").data)
    assert dict(zip(header, ramesh_line, strict=True)) == {
        "worker_id": str(ramesh),
        "worker": "Gomti Services worker",
        "jobs": "2",
        "assigned": "2",
        "median_minutes_to_assignment": "20.0",
        "completed": "2",
        "median_minutes_to_completion": "100.0",
        "rated": "2",
        "average_rating": "3.50",
        "dissatisfied": "1",
        "offers_declined": "1",
        "offers_timed_out": "2",
    }
    assert total[:3] == ["", "Gomti Services", "2"]


def test_a_supervisor_sees_any_agencys_report(app: Flask, supervisor: Console) -> None:
    theirs, worker = agency_with_a_worker(app, "=Saryu Services", "+919800000002")
    filed(app, "LUCKNOW", assigned_after=10, completed_after=70, rating=1, worker_id=worker)
    page = supervisor.get(f"/console/reports/agencies/{theirs}?from={DAY}&to={DAY}").get_data(as_text=True)
    assert "Dissatisfied citizens" in page
    [_, line, total] = sheet(supervisor.get(f"/console/reports/agencies/{theirs}.csv?from={DAY}&to={DAY}").data)
    assert line[1] == "'=Saryu Services worker"  # a formula defused
    assert total[1] == "'=Saryu Services"
    assert supervisor.get("/console/reports/agencies/999999").status_code == 404


# -- the dashboard: a district, hour by hour, and now ------------------------------------------------


def test_the_district_filter_scopes_every_figure_and_stays_in_the_links(app: Flask, supervisor: Console) -> None:
    a_day_in_three_districts(app)
    kanpur = filed(app, "KANPUR NAGAR", created=MORNING + 2 * timedelta(hours=1))
    with session_scope(engine_of(app)) as db:
        db.add(CallLog(call_sid="CA" + "1" * 32, started_at=MORNING, outcome="request_created", request_id=kanpur))
        db.add(CallLog(call_sid="CA" + "2" * 32, started_at=MORNING, outcome="tracked"))
    page = supervisor.get(f"/console/dashboard?day={DAY}&district=KANPUR+NAGAR").get_data(as_text=True)
    assert "<title>Kanpur Nagar: 2</title>" in page  # requests by district: Kanpur's only
    assert "<title>Lucknow" not in page
    assert re.search(r"Calls today</span>\s*<b>1</b>", page)  # the call that filed Kanpur's request
    assert "<title>10 · Calls: 1</title>" in page  # hour by hour, on the call centre's clock
    assert "<title>10 · Requests: 1</title>" in page
    assert "<title>12 · Requests: 1</title>" in page
    ranking = page[page.index('id="ranking"') :]
    assert "Kanpur Nagar" in ranking  # its own line, with its rank
    assert "Lucknow" not in ranking
    assert "selected>Kanpur Nagar</option>" in page
    assert "district=KANPUR+NAGAR" in page  # the previous day, the export, the live panel keep it
    assert f'href="/console/requests/export.csv?from={DAY}&amp;to={DAY}&amp;district=KANPUR+NAGAR"' in page


def test_a_district_outside_the_service_area_shows_every_district_and_says_so(app: Flask, supervisor: Console) -> None:
    a_day_in_three_districts(app)
    for bad in ("MUMBAI", "<script>", "\x00"):
        response = supervisor.get("/console/dashboard", query_string={"day": DAY, "district": bad})
        assert response.status_code in (200, 400)
        if response.status_code == 200:
            page = response.get_data(as_text=True)
            assert "That district is not in the service area" in page
            assert "<title>Lucknow: 4</title>" in page


def test_the_live_panel_counts_a_caller_waiting_in_the_redis_queue(
    app: Flask, supervisor: Console, clock: FrozenClock
) -> None:
    connection = app.extensions["sewamitra"].redis
    now = clock.now().timestamp()
    callqueue.note_waiting(connection, callqueue.Call("CA" + "3" * 32, None, "hi", "plumber", "226001"), 1, 95, now)
    callqueue.note_waiting(connection, callqueue.Call("CA" + "4" * 32, None, "hi", "plumber", "208001"), 2, 20, now)
    with session_scope(engine_of(app)) as db:
        db.add(CallLog(call_sid="CA" + "3" * 32, started_at=clock.now() - 2 * MINUTE, direction=Direction.INBOUND))
        db.add(CallLog(call_sid="CA" + "5" * 32, started_at=clock.now(), ended_at=clock.now(), status="completed"))
        sunita = db.exec(select(User).where(User.username == "sunita")).one()
    filed(app, "LUCKNOW", created=clock.now())
    filed(app, "LUCKNOW", created=clock.now(), completed_after=30)  # done: off the ladder, whatever its rung
    with session_scope(engine_of(app)) as db:
        db.execute(sa.update(ServiceRequest).values(escalation_level=2))  # both past the first rung
    # her desk phone rings for the longest waiting; another agent is ready, a third on a break
    agents.save(
        connection, agents.AgentStatus(sunita.id or 0, agents.AgentState.ON_CALL, now, call_sid="CA" + "3" * 32)
    )
    agents.save(connection, agents.AgentStatus(9001, agents.AgentState.READY, now))
    agents.save(connection, agents.AgentStatus(9002, agents.AgentState.PAUSED, now, reason="lunch"))

    panel = supervisor.get("/console/dashboard/live", headers={"X-Live": "1"}).get_data(as_text=True)
    assert re.search(r'id="live-waiting">2<', panel)
    assert "1 min 35 s" in panel  # the longest wait
    assert re.search(r'id="live-calls">1<', panel)  # the finished call is not in progress
    assert re.search(r'id="live-agents">1<', panel)
    assert re.search(r'id="live-ready">1<', panel)
    assert re.search(r'id="live-ladder">1<', panel)  # the open one of the two
    assert re.search(r'id="live-new">1<', panel)
    lucknow = supervisor.get("/console/dashboard/live?district=LUCKNOW").get_data(as_text=True)
    assert "1 from this district" in lucknow  # 226001 is Lucknow's GPO; 208001 is Kanpur's
    page = supervisor.get("/console/dashboard").get_data(as_text=True)
    assert 'data-live="/console/dashboard/live"' in page


def test_with_redis_unreachable_the_live_panel_says_so_and_still_counts_the_rest(
    app: Flask, app_settings: Settings, supervisor: Console, clock: FrozenClock
) -> None:
    filed(app, "LUCKNOW", created=clock.now())
    offline = create_app(app_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), clock)
    browser = offline.test_client()
    name = app.config["SESSION_COOKIE_NAME"]
    session = supervisor.client.get_cookie(name)
    assert session is not None
    browser.set_cookie(name, session.value)  # the same signed-in session, on a node without Redis
    response = browser.get("/console/dashboard/live")
    panel = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Redis is unreachable" in panel
    assert re.search(r'id="live-waiting">–<', panel)
    assert re.search(r'id="live-new">1<', panel)
    offline.extensions["sewamitra"].engine.dispose()
