"""The breach register: an admin records a breach and whose data it touched, each of them is told
by SMS in their language through the normal outbound path, and the register exports as CSV (UTF-8
with a BOM) for the Data Protection Board."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlmodel import Session, select

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from storage.models import AuditEvent, Breach, BreachCitizen, Role, SmsLog
from tests.console import Console, add_user
from tests.factories import ALWAYS_OPEN, call, engine_of, run_jobs, with_hours

HINDI_CALLER, ENGLISH_CALLER, ELSEWHERE = "+919811100011", "+919811100012", "+919811100013"


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def admin(app: Flask) -> Console:
    add_user(engine_of(app), "meera", Role.ADMIN)
    console = Console(app)
    console.sign_in("meera")
    return console


def local(moment: datetime) -> str:
    """A datetime-local field as the admin's browser fills it: the call centre's time."""
    return moment.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%dT%H:%M")


def test_a_breach_in_lucknow_tells_its_citizens_in_their_language_and_exports(
    app: Flask, admin: Console, sandbox: TwilioSandbox
) -> None:
    call(app, "1,1,1,226001#,1,9", from_number=HINDI_CALLER)  # Lucknow, in Hindi
    call(app, "2,1,1,226001#,1,9", from_number=ENGLISH_CALLER)  # Lucknow, in English
    call(app, "2,1,1,208001#,1,9", from_number=ELSEWHERE)  # Kanpur
    run_jobs(app)
    before = len(sandbox.messages)
    now = datetime.now(UTC)

    page = admin.post(
        "/console/breaches/",
        {
            "description": "=A laptop with an export of requests was stolen",
            "occurred_at": local(now - timedelta(hours=2)),
            "district": "lucknow",
            "since": local(now - timedelta(days=1)),
            "until": local(now + timedelta(minutes=1)),
        },
        follow_redirects=True,
    )

    assert "The breach is recorded" in page.get_data(as_text=True)
    with Session(engine_of(app)) as session:
        [breach] = session.exec(select(Breach)).all()
        assert len(session.exec(select(BreachCitizen)).all()) == 2
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "privacy.breach_recorded")).all()
        queued = session.exec(select(SmsLog).where(SmsLog.template == "breach_notice")).all()
    assert (breach.affected, breach.notified) == (2, 2)
    assert event.detail == {"affected": 2, "notified": 2}
    assert {sms.to_number for sms in queued} == {HINDI_CALLER, ENGLISH_CALLER}
    run_jobs(app)  # the normal outbound path: recorded, queued, sent
    told = {m["to"]: m["body"] for m in sandbox.messages[before:]}
    assert set(told) == {HINDI_CALLER, ENGLISH_CALLER}
    assert "सुरक्षा घटना" in told[HINDI_CALLER]
    assert told[ENGLISH_CALLER].startswith("Sewamitra: a security incident on ")
    assert told[ENGLISH_CALLER].endswith("/privacy?lang=en")

    export = admin.get("/console/breaches/export.csv")
    assert export.status_code == 200
    assert export.data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM
    rows = list(csv.reader(io.StringIO(export.data.decode("utf-8-sig"))))
    assert rows[0] == [
        "breach",
        "occurred_at (Asia/Kolkata)",
        "recorded_at (Asia/Kolkata)",
        "description",
        "scope",
        "affected",
        "notified",
    ]
    assert rows[1][3] == "'=A laptop with an export of requests was stolen"  # a formula defused
    assert rows[1][5:] == ["2", "2"]


def test_a_breach_by_numbers_and_only_admins_keep_the_register(app: Flask, admin: Console) -> None:
    call(app, "2,1,1,226001#,1,9", from_number=ENGLISH_CALLER)
    recorded = admin.post(
        "/console/breaches/",
        {
            "description": "An SMS list was sent to the wrong vendor",
            "occurred_at": local(datetime.now(UTC)),
            "numbers": f"{ENGLISH_CALLER}\n98111-00099\nnot a number",
        },
        follow_redirects=True,
    )
    assert "The breach is recorded" in recorded.get_data(as_text=True)
    with Session(engine_of(app)) as session:
        [breach] = session.exec(select(Breach)).all()
    assert (breach.affected, breach.notified) == (1, 1)  # the unknown number is no one's data here

    add_user(engine_of(app), "vikram", Role.SUPERVISOR)
    supervisor = Console(app)
    supervisor.sign_in("vikram")
    assert supervisor.get("/console/breaches/").status_code == 403
    assert supervisor.get("/console/breaches/export.csv").status_code == 403
    incomplete = admin.post("/console/breaches/", {"description": "no when, no whom"}, follow_redirects=True)
    assert "Say what happened, when, and whose data" in incomplete.get_data(as_text=True)
