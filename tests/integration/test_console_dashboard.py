"""The supervisor's dashboard on real PostgreSQL and SQLite: a known day of calls and requests,
and the figures the supervisor reads off the page."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from flask import Flask

from storage.db import session_scope
from storage.models import CallLog, Direction, RequestStatus, Role, ServiceRequest, utcnow
from tests.console import Console, add_user, signed_in
from tests.factories import engine_of

# Both databases: the dashboard counts by Indian day: date windows and sums over timestamps stored per dialect.
pytestmark = pytest.mark.both_databases

DAY = "2025-03-10"  # in India; it runs from 18:30 UTC on the 9th to 18:30 UTC on the 10th
MORNING = datetime(2025, 3, 10, 4, 30, tzinfo=UTC)  # 10:00 in Lucknow
TILE = re.compile(r'<div class="kpi"[^>]*>\s*<span class="muted">(.*?)</span>\s*<b>(.*?)</b>', re.S)
ROW = re.compile(
    r'<tr>\s*<td><span class="badge (\w+)">.*?</span></td>\s*<td class="num">(\d*)</td>\s*'
    r'<td class="num">(\d*)</td>',
    re.S,
)
_numbers = count(1000001)


@pytest.fixture
def supervisor(app: Flask) -> Console:
    return signed_in(app, "sunita", Role.SUPERVISOR)


def call(
    app: Flask,
    started: datetime,
    outcome: str | None,
    queue_result: str | None = None,
    wait_s: int | None = None,
    direction: Direction = Direction.INBOUND,
) -> None:
    with session_scope(engine_of(app)) as db:
        db.add(
            CallLog(
                call_sid=f"CA{next(_numbers):032d}",
                direction=direction,
                started_at=started,
                outcome=outcome,
                queue_result=queue_result,
                queue_wait_s=wait_s,
                status="completed",
            )
        )


def service_request(
    app: Flask, district: str, created: datetime, status: RequestStatus, assigned_after: timedelta | None = None
) -> None:
    with session_scope(engine_of(app)) as db:
        db.add(
            ServiceRequest(
                number=str(next(_numbers)),
                service_code="plumber",
                pincode="226001",
                district=district,
                status=status,
                created_at=created,
                assigned_at=created + assigned_after if assigned_after else None,
            )
        )


def a_busy_morning(app: Flask) -> None:
    """Eleven calls into the helpline on 10 March, and six requests; around them, calls that do not count."""
    call(app, datetime(2025, 3, 9, 18, 30, tzinfo=UTC), "request_created")  # midnight in India: the 10th
    for _ in range(3):
        call(app, MORNING, "request_created")
    call(app, MORNING, "tracked")
    call(app, MORNING, "ended_in_menu")
    for wait in (30, 60, 90):
        call(app, MORNING, "agent_queue", "bridged", wait)
    call(app, MORNING, "agent_queue", "hangup", 120)
    call(app, MORNING, "abandoned")  # hung up in the menu
    call(app, datetime(2025, 3, 9, 18, 29, 59, tzinfo=UTC), "request_created")  # 23:59:59 on the 9th
    call(app, MORNING, None, direction=Direction.OUTBOUND)  # the helpline calling a worker
    minutes = timedelta(minutes=1)
    service_request(app, "LUCKNOW", MORNING, RequestStatus.ASSIGNED, 10 * minutes)
    service_request(app, "LUCKNOW", MORNING, RequestStatus.COMPLETED, 30 * minutes)
    service_request(app, "LUCKNOW", MORNING, RequestStatus.ASSIGNED, 90 * minutes)  # past the 60-minute SLA
    service_request(app, "LUCKNOW", MORNING, RequestStatus.CANCELLED)
    service_request(app, "KANPUR NAGAR", MORNING, RequestStatus.ESCALATED)  # nobody yet, long past the SLA
    service_request(app, "AGRA", MORNING, RequestStatus.NEW)  # nobody yet, long past the SLA
    # Made late on the 9th, assigned after midnight: counts for the 10th's time to assignment.
    service_request(app, "AGRA", datetime(2025, 3, 9, 17, 0, tzinfo=UTC), RequestStatus.COMPLETED, 120 * minutes)


def tiles(page: str) -> dict[str, str]:
    return {html.unescape(label): html.unescape(value) for label, value in TILE.findall(page)}


def status_table(page: str) -> dict[str, tuple[str, str]]:
    """Status → (created that day, open now), as the table under the charts shows them."""
    return {status: (created, open_now) for status, created, open_now in ROW.findall(page)}


def test_the_supervisor_sees_how_the_days_calls_were_answered(app: Flask, supervisor: Console) -> None:
    a_busy_morning(app)
    page = supervisor.get(f"/console/dashboard?day={DAY}").get_data(as_text=True)
    shown = tiles(page)
    assert shown["Calls"] == "11"
    assert shown["Answered in IVR"] == "6"
    assert shown["Answered by agents"] == "3"
    assert shown["Abandon rate"] == "25.0%"  # one of the four callers who reached the queue hung up waiting
    assert shown["Average wait"] == "1 min 15 s"  # (30 + 60 + 90 + 120) / 4
    assert "<title>Answered in IVR: 6 · 54.5%</title>" in page
    assert "<title>Abandoned in queue: 1 · 9.1%</title>" in page


def test_the_supervisor_sees_time_to_assignment_and_sla_breaches(app: Flask, supervisor: Console) -> None:
    a_busy_morning(app)
    page = supervisor.get(f"/console/dashboard?day={DAY}").get_data(as_text=True)
    shown = tiles(page)
    assert shown["Time to assignment"] == "60 min"  # median of 10, 30, 90 and 120 minutes
    assert shown["90th percentile"] == "111 min"  # linear: 90 + 0.7 × 30
    assert shown["SLA breaches"] == "4"  # two assigned late, two still waiting for a worker
    assert "2 assigned late · 2 still unassigned" in page
    assert 'href="/console/requests?sla=breached"' in page


def test_the_days_requests_can_be_exported(app: Flask, supervisor: Console) -> None:
    page = supervisor.get(f"/console/dashboard?day={DAY}").get_data(as_text=True)
    assert f'href="/console/requests/export.csv?from={DAY}&amp;to={DAY}"' in page


def test_the_supervisor_sees_requests_by_status_and_by_district(app: Flask, supervisor: Console) -> None:
    a_busy_morning(app)
    service_request(app, "AGRA", utcnow(), RequestStatus.NEW)  # made just now: open, within the SLA
    page = supervisor.get(f"/console/dashboard?day={DAY}").get_data(as_text=True)
    table = status_table(page)
    assert table["new"] == ("1", "2")
    assert table["assigned"] == ("2", "2")
    assert table["escalated"] == ("1", "1")
    assert table["completed"] == ("1", "")  # done: not open
    assert table["cancelled"] == ("1", "")
    assert "<title>Lucknow: 4</title>" in page
    assert "<title>Agra: 1</title>" in page
    assert "<title>Kanpur Nagar: 1</title>" in page
    assert tiles(page)["SLA breaches"] == "4"  # the fresh request is not late yet


def test_the_dashboard_opens_on_today_in_india(app: Flask, supervisor: Console) -> None:
    call(app, utcnow(), "agent_queue", "bridged", 40)
    page = supervisor.get("/console/dashboard").get_data(as_text=True)
    shown = tiles(page)
    assert shown["Calls today"] == "1"
    assert shown["Answered by agents"] == "1"
    assert shown["Abandon rate"] == "0.0%"
    assert shown["Average wait"] == "40 s"
    assert shown["Time to assignment"] == "–"  # nothing assigned yet today: no figure, not zero


def test_a_day_that_cannot_be_read_shows_today_and_says_so(app: Flask, supervisor: Console) -> None:
    for bad in ("10-03-2025", "2025-02-30", "0001-01-01", "<script>", "2025-03-10T00:00"):
        response = supervisor.get("/console/dashboard", query_string={"day": bad})
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "That date could not be read; showing today." in page
        assert "Calls today" in page


def test_a_quiet_day_shows_no_figures_rather_than_zero_rates(app: Flask, supervisor: Console) -> None:
    page = supervisor.get("/console/dashboard?day=2024-01-01").get_data(as_text=True)
    shown = tiles(page)
    assert shown["Calls"] == "0"
    assert shown["Abandon rate"] == "–"
    assert shown["Average wait"] == "–"
    assert "<svg" not in page  # nothing to draw


def test_district_names_are_escaped_in_the_charts(app: Flask, supervisor: Console) -> None:
    service_request(app, '<img src=x onerror="alert(1)">', MORNING, RequestStatus.NEW)
    page = supervisor.get(f"/console/dashboard?day={DAY}").get_data(as_text=True)
    assert "<img" not in page.lower()
    assert "&lt;img src=x" in page.lower()
    assert "style=" not in page  # the Content-Security-Policy would refuse it


def test_labels_follow_the_console_language(app: Flask, supervisor: Console) -> None:
    supervisor.get("/console/dashboard")  # the page whose हिन्दी button the supervisor presses
    supervisor.post("/console/language", {"language": "hi", "back": "/console/dashboard"})
    page = supervisor.get("/console/dashboard").get_data(as_text=True)
    assert "आज की कॉल" in tiles(page)
    assert "छोड़ी गई कॉल दर" in tiles(page)


@pytest.mark.parametrize("role", [Role.AGENT, Role.PROVIDER])
def test_only_supervisors_and_admins_see_the_dashboard(app: Flask, role: Role) -> None:
    add_user(engine_of(app), "someone", role, provider="Lucknow Home Services" if role is Role.PROVIDER else None)
    console = Console(app)
    console.sign_in("someone")
    assert console.get("/console/dashboard").status_code == 403


def test_an_admin_sees_the_dashboard_too(app: Flask) -> None:
    add_user(engine_of(app), "arvind", Role.ADMIN)
    console = Console(app)
    console.sign_in("arvind")
    assert console.get("/console/dashboard").status_code == 200
