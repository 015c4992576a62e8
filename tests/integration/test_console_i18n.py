"""The console in Hindi through and through: a request's timeline and a worker's history name the
actions, statuses, actors and units in Hindi, the district in Devanagari; the error pages are the
console's own, in Hindi. English readers see what they saw before."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask, session
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from console import present
from console.labels import translate
from core.settings import Settings
from dispatch import jobs, lifecycle
from dispatch.queues import QueueName, queue
from storage.db import session_scope
from storage.models import RequestStatus, Role, ServiceRequest
from tests.console import Console, add_user, engine_of
from tests.factories import ALWAYS_OPEN, add_request, add_worker, run_jobs, with_hours


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def signed_in(app: Flask, username: str, role: Role, language: str) -> Console:
    add_user(engine_of(app), username, role, provider="Gomti Services" if role is Role.PROVIDER else None)
    console = Console(app)
    console.sign_in(username)
    console.post("/console/language", {"language": language, "back": "/console/"})
    return console


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def part(html: str, start: str, end: str = "</ul>") -> str:
    return html.split(start, 1)[1].split(end, 1)[0]


def dispatched_request(app: Flask) -> str:
    """A Lucknow request offered to a Hindi-speaking worker by SMS; its number."""
    add_worker(engine_of(app), "Ramesh Yadav", "+919800000001", 1.0)
    redis_client = app.extensions["sewamitra"].redis
    queue(redis_client, QueueName.DISPATCH).enqueue(jobs.rebuild_index)
    request_id = add_request(engine_of(app))
    queue(redis_client, QueueName.DISPATCH).enqueue(jobs.dispatch_request, request_id)
    run_jobs(app)
    with Session(engine_of(app)) as db:
        found = db.get(ServiceRequest, request_id)
        assert found is not None
        return found.number


def test_a_request_timeline_reads_in_hindi(app: Flask) -> None:
    number = dispatched_request(app)
    hindi = signed_in(app, "asha", Role.AGENT, "hi")
    page = text(hindi.get(f"/console/requests/{number}"))
    timeline = part(page, 'id="timeline"')
    assert "डिस्पैच: प्रस्तावित (नया → प्रस्तावित): पहला प्रस्ताव भेजा गया" in timeline
    assert "एसएमएस जावक" in timeline
    assert "(प्रस्ताव)" in timeline
    for english in ("dispatch:", "offered", "SMS outbound", "first offer sent", "offer sent", "queued"):
        assert english not in timeline, english
    assert "<td>लखनऊ</td>" in page  # the district, in Devanagari

    in_english = signed_in(app, "vikram", Role.SUPERVISOR, "en")
    timeline = part(text(in_english.get(f"/console/requests/{number}")), 'id="timeline"')
    assert "dispatch: offered (new → offered): first offer sent" in timeline
    assert "SMS outbound" in timeline


def test_a_worker_history_reads_in_hindi(app: Flask) -> None:
    worker = add_worker(engine_of(app), "Sunita Devi", "+919800000002", 1.0, verified=False)
    hindi = signed_in(app, "vikram", Role.SUPERVISOR, "hi")
    hindi.post(
        f"/console/workers/{worker}/verification",
        {"outcome": "verified", "reference": "UP-LKO-2026-0042", "verified_on": "2026-11-30"},
    )
    hindi.post(f"/console/workers/{worker}/availability", {"available": "no"})
    history = part(text(hindi.get(f"/console/workers/{worker}")), "<h2>इतिहास</h2>")
    assert "पुलिस सत्यापन दर्ज · लंबित → सत्यापित" in history
    assert "उपलब्धता बदली गई · उपलब्ध → व्यस्त" in history
    for english in ("worker.verified", "pending", "verified", "available", "busy"):
        assert english not in history, english

    in_english = signed_in(app, "meera", Role.SUPERVISOR, "en")
    history = part(text(in_english.get(f"/console/workers/{worker}")), "<h2>History</h2>")
    assert "worker.verified · pending → verified" in history
    assert "worker.availability · available → busy" in history


def test_the_404_and_403_pages_are_the_consoles_own_in_hindi(app: Flask) -> None:
    hindi = signed_in(app, "gomti.office", Role.PROVIDER, "hi")
    for path in ("/console/requests/1234567", "/console/no-such-page", "/console/workers/99999999999"):
        missing = hindi.get(path)
        assert missing.status_code == 404, path
        page = text(missing)
        assert "404 · नहीं मिला" in page, path
        assert "ऐसा कोई पेज या रिकॉर्ड नहीं।" in page, path
        assert 'lang="hi"' in page, path
        assert "साइन आउट" in page, path
        assert "Not found" not in page, path  # the console's frame
    refused = hindi.get("/console/dashboard")
    assert refused.status_code == 403
    assert "403 · अनुमति नहीं" in text(refused)

    english = signed_in(app, "asha", Role.AGENT, "en")
    assert "404 · Not found" in text(english.get("/console/no-such-page"))
    anonymous = app.test_client().get("/console/no-such-page")  # nobody signed in: nothing of the console shows
    assert anonymous.status_code == 404
    assert anonymous.mimetype == "text/plain"


def test_waits_are_in_hindi_units(app: Flask) -> None:
    cases = {
        "hi": (["35 सेकंड", "4 मिनट 05 सेकंड", "2 घंटे 01 मिनट"], "1 मिनट 15 सेकंड"),
        "en": (["35 s", "4 min 05 s", "2 h 01 min"], "1 min 15 s"),
    }
    for language, (waits, tile) in cases.items():
        with app.test_request_context("/console/queue"):
            session["language"] = language
            assert [present.wait(35), present.wait(245), present.wait(7260)] == waits
            assert present.duration(75) == tile


def test_a_refusal_from_dispatch_is_shown_in_hindi(app: Flask) -> None:
    request_id = add_request(engine_of(app))
    with session_scope(engine_of(app)) as db:
        db.execute(
            sa.update(ServiceRequest).where(col(ServiceRequest.id) == request_id).values(status=RequestStatus.CLOSED)
        )
        number = db.exec(select(ServiceRequest.number).where(ServiceRequest.id == request_id)).one()
    hindi = signed_in(app, "asha", Role.AGENT, "hi")
    refused = text(hindi.post(f"/console/requests/{number}/cancel", {"reason": "दोहराया गया"}, follow_redirects=True))
    assert '<p class="flash">जो अनुरोध बंद है, वह रद्द नहीं हो सकता</p>' in refused
    english = signed_in(app, "vikram", Role.SUPERVISOR, "en")
    refused = text(english.post(f"/console/requests/{number}/cancel", {"reason": "duplicate"}, follow_redirects=True))
    assert '<p class="flash">a request that is closed cannot be cancelled</p>' in refused


def test_reasons_with_a_value_read_in_hindi(app: Flask) -> None:
    with app.test_request_context("/console/"):
        session["language"] = "hi"
        assert translate("rated 4") == "रेटिंग 4"
        assert translate("the worker was stood down: deactivated") == "कार्यकर्ता को हटाया गया: निष्क्रिय किया गया"
        assert translate("Ramesh Yadav is not police-verified") == "Ramesh Yadav का पुलिस सत्यापन नहीं हुआ है"
        assert translate("Sunita already has job 1234567 in hand") == "Sunita के पास पहले से काम 1234567 है"
        assert translate(lifecycle.DONE_BEFORE).startswith("एक कार्यकर्ता यह काम पहले ही ले चुका है")
        assert translate("a note an agent wrote") == "a note an agent wrote"
