"""Agents' calls in the console, against the real app and database: the wrap-up codes report (by
code, agent and day, in the call centre's days, on screen and as CSV) and the dashboard's table,
checked against the calls made here; a supervisor's quality review of a call against the scorecard
(one a call, edited by its author only), hostile scores refused; each agent's quality report, on
screen and as CSV; an agent sees their own calls and reviews, and no one else's."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from core.clock import FrozenClock
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import AgentCall, AuditEvent, CallReview, Recording, RecordingKind, Role, ServiceRequest, User
from tests.console import Console, add_user, signed_in
from tests.factories import add_request, engine_of

NOW = datetime(2027, 3, 3, 6, 0, tzinfo=UTC)
SPAN = "from=2027-03-01&to=2027-03-02"

pytestmark = pytest.mark.both_databases


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


def page(response: TestResponse) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def agent(app: Flask, username: str) -> tuple[Console, int]:
    user = add_user(engine_of(app), username, Role.AGENT)
    console = Console(app)
    console.sign_in(username)
    assert user.id is not None
    return console, user.id


def talked(app: Flask, agent_id: int, at: str, seconds: int | None, code: str | None) -> int:
    """An agent call answered at `at` (UTC), `seconds` long (None: not ended), with its wrap-up code."""
    answered = datetime.fromisoformat(at).replace(tzinfo=UTC)
    with session_scope(engine_of(app)) as db:
        call = AgentCall(
            call_sid=f"CA{answered:%d%H%M}{agent_id:026d}",
            agent_id=agent_id,
            language="hi",
            answered_at=answered,
            ended_at=answered + timedelta(seconds=seconds) if seconds is not None else None,
            disposition=code,
        )
        db.add(call)
        db.flush()
        assert call.id is not None
        return call.id


def sheet(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


@pytest.fixture
def two_days(app: Flask) -> dict[str, int]:
    """Asha's and Ravi's calls around 1 and 2 March 2027 in Lucknow (UTC+5:30)."""
    _, asha = agent(app, "asha")
    _, ravi = agent(app, "ravi")
    talked(app, asha, "2027-03-01T04:00", 120, "booked")  # 09:30 on the 1st
    talked(app, asha, "2027-03-01T05:00", 60, "booked")
    talked(app, asha, "2027-03-01T06:00", 30, "prank")
    talked(app, ravi, "2027-03-01T18:00", 90, "none")  # 23:30 on the 1st: wrap-up ran out
    talked(app, ravi, "2027-03-01T18:45", 45, "booked")  # 00:15 on the 2nd
    talked(app, ravi, "2027-02-28T18:00", 10, "booked")  # 23:30 on 28 February: outside
    talked(app, asha, "2027-03-02T07:00", None, None)  # still in wrap-up
    return {"asha": asha, "ravi": ravi}


def test_the_wrap_up_codes_report_counts_the_calls_by_code_agent_and_local_day(
    app: Flask, two_days: dict[str, int]
) -> None:
    boss = signed_in(app, "sunita", Role.SUPERVISOR)

    shown = page(boss.get(f"/console/calls/codes?{SPAN}"))
    assert 'Calls: <span id="codes-total">6</span>' in shown
    assert 'Request booked</td>\n      <td class="num">3</td>\n      <td class="num">50.0%</td>' in shown
    assert "None given</td>" in shown
    assert "No code yet</td>" in shown

    [header, *rows] = sheet(boss.get(f"/console/calls/codes.csv?{SPAN}").data)
    assert header == ["table", "group", "code", "code_name", "calls", "share_percent", "average_talk_seconds"]
    assert rows == [
        ["code", "", "booked", "Request booked", "3", "50.0", "75"],
        ["code", "", "none", "None given", "1", "16.7", "90"],
        ["code", "", "pending", "No code yet", "1", "16.7", ""],
        ["code", "", "prank", "Prank call", "1", "16.7", "30"],
        ["agent", "Asha", "booked", "Request booked", "2", "50.0", "90"],
        ["agent", "Asha", "pending", "No code yet", "1", "25.0", ""],
        ["agent", "Asha", "prank", "Prank call", "1", "25.0", "30"],
        ["agent", "Ravi", "booked", "Request booked", "1", "50.0", "45"],
        ["agent", "Ravi", "none", "None given", "1", "50.0", "90"],
        ["day", "2027-03-01", "booked", "Request booked", "2", "50.0", "90"],
        ["day", "2027-03-01", "none", "None given", "1", "25.0", "90"],
        ["day", "2027-03-01", "prank", "Prank call", "1", "25.0", "30"],
        ["day", "2027-03-02", "booked", "Request booked", "1", "50.0", "45"],
        ["day", "2027-03-02", "pending", "No code yet", "1", "50.0", ""],
    ]

    dashboard = page(boss.get("/console/dashboard?day=2027-03-01"))
    table = dashboard.split('id="wrap-up-codes"')[1].split("</section>")[0]
    assert [cell.split("<")[0] for cell in table.split("<td")[1:]] == [
        ">Request booked",
        ' class="num">2',
        ">None given",
        ' class="num">1',
        ">Prank call",
        ' class="num">1',
    ]


def test_only_supervisors_see_the_wrap_up_codes_report(app: Flask, two_days: dict[str, int]) -> None:
    asha = Console(app)
    asha.sign_in("asha")
    assert asha.get(f"/console/calls/codes?{SPAN}").status_code == 403
    assert asha.get(f"/console/calls/codes.csv?{SPAN}").status_code == 403


SCORES = {"greeting": 10, "language": 10, "identity_check": 5, "resolution": 30, "courtesy": 20}  # 75 of 100


def scored(points: Mapping[str, object], **comments: str) -> dict[str, object]:
    return {f"points_{code}": value for code, value in points.items()} | {
        f"comment_{code}": text for code, text in comments.items()
    }


def reviews(app: Flask) -> list[CallReview]:
    with Session(engine_of(app)) as db:
        return list(db.exec(select(CallReview).order_by(col(CallReview.id))).all())


def test_a_supervisor_reviews_a_call_on_its_page_and_only_they_may_change_the_review(
    app: Flask, two_days: dict[str, int]
) -> None:
    asha_id, ravi_id = two_days["asha"], two_days["ravi"]
    call = talked(app, asha_id, "2027-03-02T08:00", 200, "booked")
    boss = signed_in(app, "sunita", Role.SUPERVISOR)

    facts = page(boss.get(f"/console/calls/{call}"))
    assert "Asha" in facts
    assert "हिन्दी" in facts
    assert "Request booked" in facts
    assert "Recordings" not in facts  # none for this call
    assert 'id="call-request"' not in facts
    assert 'id="review-form"' in facts
    assert '<label for="points-greeting">Greeting</label>' in facts

    # Recordings of the call (the platform's recording callback writes these, with the agent), one
    # erased, one of Ravi's call with the same caller (put through to him after), and a request Asha
    # filed from the call's screen.
    with session_scope(engine_of(app)) as db:
        [sid] = db.exec(select(AgentCall.call_sid).where(AgentCall.id == call)).all()
        for recording_id, erased, agent in (("RE1", None, asha_id), ("RE2", NOW, asha_id), ("RE3", None, ravi_id)):
            db.add(
                Recording(
                    call_sid=sid,
                    platform="twilio",
                    recording_id=recording_id,
                    url="https://api.twilio.com/x",
                    duration_s=200,
                    kind=RecordingKind.AGENT_CALL,
                    erased_at=erased,
                    agent_id=agent,
                )
            )
    request_id = add_request(engine_of(app), created=datetime(2027, 3, 2, 8, 1, tzinfo=UTC))
    with session_scope(engine_of(app)) as db:
        event = record(
            db,
            AuditAction.REQUEST_CREATED,
            actor=f"user:{asha_id}",
            entity="service_request",
            entity_id=request_id,
            detail={"call_sid": sid},
        )
        event.at = datetime(2027, 3, 2, 8, 1, tzinfo=UTC)
        number = db.exec(select(ServiceRequest.number).where(ServiceRequest.id == request_id)).one()
    facts = page(boss.get(f"/console/calls/{call}"))
    assert facts.count("/recordings/") == 1
    assert '<span id="recording-1">Recording 1</span>' in facts
    # Played on the page, where the supervisor scores the call (fetched only when played, each playing
    # audited: test_agent_call_recording plays one through this route).
    assert re.search(r'<audio controls preload="none" src="/console/calls/\d+/recordings/\d+\.mp3"', facts)
    assert 'aria-labelledby="recording-1"' in facts
    assert f'id="call-request">{number}</a>' in facts

    # Hostile scores: over an item's points, negative, not a number, missing, an overlong comment.
    for bad in (
        scored(SCORES | {"greeting": 11}),
        scored(SCORES | {"greeting": -1}),
        scored(SCORES | {"greeting": "1e1"}),
        scored({k: v for k, v in SCORES.items() if k != "courtesy"}),
        scored(SCORES, courtesy="z" * 501),
    ):
        response = boss.post(f"/console/calls/{call}/review", bad)
        assert response.status_code == 400
        assert "Score every item within its points" in response.get_data(as_text=True)
    assert reviews(app) == []

    assert (
        boss.post(f"/console/calls/{call}/review", scored(SCORES, identity_check="Did not ask the PIN")).status_code
        == 302
    )
    [review] = reviews(app)
    assert (review.points, review.max_points, review.passed) == (75, 100, True)
    assert review.scores["identity_check"] == {"points": 5, "comment": "Did not ask the PIN"}

    # Another supervisor may read it, not change it.
    other = signed_in(app, "vikram", Role.SUPERVISOR)
    assert 'id="review-form"' not in page(other.get(f"/console/calls/{call}"))
    assert other.post(f"/console/calls/{call}/review", scored(SCORES | {"greeting": 0})).status_code == 403
    # Its author corrects it: still one review, below the pass mark now.
    assert (
        boss.post(
            f"/console/calls/{call}/review", scored(SCORES | {"resolution": 20}, resolution="No follow-up promised")
        ).status_code
        == 302
    )
    [review] = reviews(app)
    assert (review.points, review.passed) == (65, False)
    with Session(engine_of(app)) as db:
        audited = db.exec(
            select(AuditEvent).where(AuditEvent.action == "agent_call.reviewed").order_by(col(AuditEvent.id))
        ).all()
    assert [(e.entity_id, e.to_status, e.detail["points"], e.detail["edited"]) for e in audited] == [
        (call, "passed", 75, False),
        (call, "failed", 65, True),
    ]

    # Asha sees her call and its review, read only; Ravi's call is not hers; agents review nothing.
    asha = Console(app)
    asha.sign_in("asha")
    hers = page(asha.get(f"/console/calls/{call}"))
    assert "65 / 100" in hers
    assert "Failed" in hers
    assert "No follow-up promised" in hers
    assert 'id="review-form"' not in hers
    assert 'id="correct-code"' not in hers
    ravis = talked(app, ravi_id, "2027-03-02T09:00", 20, "prank")
    assert asha.get(f"/console/calls/{ravis}").status_code == 403
    assert asha.get(f"/console/calls/{ravis}/recordings/1.mp3").status_code == 403
    assert asha.post(f"/console/calls/{call}/review", scored(SCORES)).status_code == 403
    listed = page(asha.get(f"/console/calls?{SPAN}&agent={ravi_id}"))  # the agent filter is not hers to use
    assert f'/console/calls/{call}"' in listed
    assert f'/console/calls/{ravis}"' not in listed


FULL_MARKS = {"greeting": 10, "language": 10, "identity_check": 20, "resolution": 40, "courtesy": 20}


def reviewed(app: Flask, two_days: dict[str, int], boss: Console) -> None:
    """The supervisor reviews two of Asha's calls and one of Ravi's in the span, and one of his before it."""
    asha_id, ravi_id = two_days["asha"], two_days["ravi"]
    first = talked(app, asha_id, "2027-03-01T09:00", 100, "booked")
    second = talked(app, asha_id, "2027-03-02T09:00", 100, "complaint")
    ravis = talked(app, ravi_id, "2027-03-02T10:00", 100, "tracked")
    outside = talked(app, ravi_id, "2027-02-27T10:00", 100, "tracked")
    for call, points in (
        (first, SCORES),  # 75, passed
        (second, {"greeting": 0, "language": 10, "identity_check": 10, "resolution": 20, "courtesy": 10}),  # 50
        (ravis, FULL_MARKS),  # 100
        (outside, {code: 0 for code in FULL_MARKS}),
    ):
        assert boss.post(f"/console/calls/{call}/review", scored(points)).status_code == 302


def test_each_agents_quality_over_the_reviewed_calls_of_the_span(app: Flask, two_days: dict[str, int]) -> None:
    boss = signed_in(app, "sunita", Role.SUPERVISOR)
    reviewed(app, two_days, boss)

    shown = page(boss.get(f"/console/calls/quality?{SPAN}"))
    table = shown.split('id="quality-by-agent"')[1].split("</table>")[0]
    lines = [[cell.split(">", 1)[1].split("<")[0] for cell in row.split("<td")[1:]] for row in table.split("<tr>")[2:]]
    # Asha: (75 + 50) / 2; one of two passed; identity check averaged 7.5 of 20, her lowest share.
    assert lines[0][1:] == ["2", "62.5%", "50.0%", "Identity check"]
    assert lines[1][1:] == ["1", "100.0%", "100.0%", "—"]

    asha = Console(app)
    asha.sign_in("asha")
    hers = page(asha.get(f"/console/calls/quality?{SPAN}"))
    assert "62.5%" in hers
    assert "100.0%" not in hers


QUALITY_HEADER = [
    "agent",
    "calls_reviewed",
    "average_score_percent",
    "pass_rate_percent",
    "weakest_item",
    "weakest_item_name",
]


def test_each_agents_quality_as_a_sheet_beside_the_report(app: Flask, two_days: dict[str, int]) -> None:
    """The sheet holds the report's lines, in English; a name a spreadsheet would run as a formula is
    defused; an agent's sheet holds her own line only."""
    boss = signed_in(app, "sunita", Role.SUPERVISOR)
    reviewed(app, two_days, boss)
    with session_scope(engine_of(app)) as db:
        ravi = db.get(User, two_days["ravi"])
        assert ravi is not None
        ravi.full_name = '=HYPERLINK("http://evil.example","Ravi")'
        db.add(ravi)

    shown = page(boss.get(f"/console/calls/quality?{SPAN}"))
    assert 'href="/console/calls/quality.csv?from=2027-03-01&amp;to=2027-03-02">Export CSV</a>' in shown
    response = boss.get(f"/console/calls/quality.csv?{SPAN}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=call-quality-20270301-20270302.csv"
    [header, *rows] = sheet(response.data)
    assert header == QUALITY_HEADER
    assert rows == [
        ["Asha", "2", "62.5", "50.0", "identity_check", "Identity check"],
        ['\'=HYPERLINK("http://evil.example","Ravi")', "1", "100.0", "100.0", "", ""],
    ]

    asha = Console(app)
    asha.sign_in("asha")
    [header, *rows] = sheet(asha.get(f"/console/calls/quality.csv?{SPAN}").data)
    assert header == QUALITY_HEADER
    assert rows == [["Asha", "2", "62.5", "50.0", "identity_check", "Identity check"]]
    nobody = sheet(boss.get("/console/calls/quality.csv?from=2027-02-01&to=2027-02-02").data)
    assert nobody == [QUALITY_HEADER]
