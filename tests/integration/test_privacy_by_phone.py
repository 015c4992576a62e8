"""A citizen asks about their own data by a menu choice on the phone (DPDP Act 2023 s.11-12), on
Twilio and on Plivo: 5 at the main menu, then 1 to hear what the helpline holds about them, or 2 to
ask for its erasure. The erasure waits in the console for a supervisor, who approves it (the number
is gone from every table, and the citizen is told by SMS) or refuses it (told by SMS to call)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlmodel import Session, select

from core import phones
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from storage.models import AuditEvent, Caller, PrivacyRequest, Role, ServiceRequest, SmsLog
from tests.console import Console, signed_in
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    ENGLISH_DIGITS,
    HINDI_DIGITS,
    call,
    engine_of,
    holds,
    redis_dump,
    run_jobs,
    spoken_digits,
    table_dump,
    with_hours,
)

ENGLISH_PLUMBER_AT_226001 = "2,1,1,226001#,1,9"
FIRST_CALL_ASKS_ERASURE = "2,5,2,1"  # English, then 5 (your data), 2 (erase), 1 (yes)


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def supervisor(app: Flask) -> Console:
    return signed_in(app, "vikram", Role.SUPERVISOR)


def privacy_requests(app: Flask) -> list[PrivacyRequest]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(PrivacyRequest).order_by(PrivacyRequest.id)).all())  # type: ignore[arg-type]


def audit_of(app: Flask, action: str) -> list[AuditEvent]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def texts_to(sandbox: TwilioSandbox, phone: str) -> list[str]:
    return [m["body"] for m in sandbox.messages if m["to"] == phone]


def test_the_main_menu_offers_the_callers_own_data_on_5(app: Flask) -> None:
    transcript = call(app, "2")
    assert transcript.said("To hear what the helpline holds about you, or to have it erased, press 5.")
    assert transcript.said("To hear what is kept, or to have it erased, press 5 at the main menu, or ask an agent.")


def test_a_caller_hears_what_the_helpline_holds_about_them(app: Flask) -> None:
    call(app, ENGLISH_PLUMBER_AT_226001)
    [request] = _requests(app)

    transcript = call(app, "5,1,9")  # a returning caller: straight to the main menu, in English

    assert transcript.said(f"The helpline holds your phone number, {spoken_digits(CITIZEN[3:], ENGLISH_DIGITS)}.")
    assert transcript.said("You have 1 open requests.")
    said = spoken_digits(request.number, ENGLISH_DIGITS)
    assert transcript.said(f"Request number {said}, Plumber: registered, we are finding a worker.")
    assert transcript.said(
        "We keep your number and what you tell us until 365 days after your last call, and the recordings "
        "of your words for 90 days; then they are erased."
    )
    heard = transcript.heard
    back = max(i for i, text in enumerate(heard) if "For the main menu, press 9." in text)
    assert any("To book a new service, press 1." in text for text in heard[back + 1 :])  # 9: the main menu again
    [given] = privacy_requests(app)
    assert (given.kind, given.status, given.filed_by) == ("access", "done", None)
    [event] = audit_of(app, "privacy.access_given")
    assert (event.actor, event.entity_id, event.detail) == ("ivr", given.id, {"caller_id": given.caller_id})


def test_a_hindi_caller_with_no_open_request_hears_so(app: Flask) -> None:
    transcript = call(app, "1,5,1")

    assert transcript.said(f"हेल्पलाइन के पास आपका फ़ोन नंबर है: {spoken_digits(CITIZEN[3:], HINDI_DIGITS)}।")
    assert transcript.said("आपका कोई अनुरोध खुला नहीं है।")


def test_a_withheld_caller_is_told_we_cannot_tell_whose_data_it_is(app: Flask) -> None:
    transcript = call(app, "2,5,1,5,2,1", from_number="anonymous")

    withheld = "Your number is withheld, so we cannot tell whose data to look for."
    assert sum(withheld in text for text in transcript.heard) == 2
    assert privacy_requests(app) == []


def test_an_erasure_asked_on_the_phone_is_approved_in_the_console_and_told_by_sms(
    app: Flask, sandbox: TwilioSandbox, supervisor: Console
) -> None:
    transcript = call(app, FIRST_CALL_ASKS_ERASURE)

    assert transcript.said(
        "To ask us to erase your phone number, the details of your requests, and our records of your calls "
        "and messages, press 1."
    )
    assert transcript.said(
        "Your request to erase your data is filed. A supervisor will decide on it, and we will send you an SMS "
        "when it is done or refused."
    )
    [filed] = privacy_requests(app)
    assert (filed.kind, filed.status, filed.filed_by) == ("erasure", "pending", None)
    [event] = audit_of(app, "privacy.erasure_filed")
    assert (event.actor, event.entity_id) == ("ivr", filed.id)

    again = call(app, "5,2,1")  # asked twice: one request
    assert again.said("Your request to erase your data is already filed, and waits for a supervisor's decision.")
    assert len(privacy_requests(app)) == 1

    waiting = supervisor.get("/console/data-requests/").get_data(as_text=True)
    assert f"/console/data-requests/{filed.id}" in waiting
    assert "By the caller, on the phone" in waiting
    run_jobs(app)  # the privacy notice's SMS of the first call, sent before the erasure
    done = supervisor.post(f"/console/data-requests/{filed.id}/approve", follow_redirects=True)

    assert "The caller&#39;s data is erased." in done.get_data(as_text=True)
    engine, connection = engine_of(app), app.extensions["sewamitra"].redis
    assert not holds(table_dump(engine), CITIZEN), "the erased citizen's number is still in a table"
    assert not holds(redis_dump(connection), CITIZEN), "the erased citizen's number is still in Redis"
    erased = "Sewamitra: as you asked, the helpline has erased the data it held about you."
    assert texts_to(sandbox, CITIZEN)[-1] == erased
    with Session(engine) as session:
        [told] = session.exec(select(SmsLog).where(SmsLog.template == "erasure_done")).all()
    assert told.to_number is not None
    assert phones.is_pseudonym(told.to_number)  # the record holds the hash the number became
    assert told.message_sid == sandbox.messages[-1]["sid"]


def test_a_refused_erasure_is_told_by_sms_with_the_helplines_number(
    app: Flask, sandbox: TwilioSandbox, supervisor: Console
) -> None:
    call(app, FIRST_CALL_ASKS_ERASURE)
    [filed] = privacy_requests(app)

    supervisor.post(f"/console/data-requests/{filed.id}/reject")
    run_jobs(app)

    assert privacy_requests(app)[0].status == "rejected"
    assert texts_to(sandbox, CITIZEN)[-1] == (
        "Sewamitra: your request to erase your data was not approved. To hear why, call 155330."
    )
    with Session(engine_of(app)) as session:
        assert session.exec(select(Caller).where(Caller.phone == CITIZEN)).first() is not None


def _requests(app: Flask) -> list[ServiceRequest]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(ServiceRequest)).all())
