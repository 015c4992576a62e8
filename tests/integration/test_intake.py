"""Filing a request: the caller, the request under a number its insert tries, its audit event, the call
that filed it and its confirmation SMS, committed together. On PostgreSQL that is one statement, on
SQLite a transaction of several: each test runs on both, and expects the same rows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core import phones, pincodes
from core.settings import Settings
from dispatch import retention
from dispatch.intake import MAX_NUMBER_DRAWS, Filed, Intake, KeyReused, file_request
from storage.db import session_scope
from storage.models import AuditEvent, Caller, CallLog, Channel, RequestStatus, ServiceRequest, SmsLog
from tests.factories import CITIZEN, add_request, make_settings, request_of

pytestmark = pytest.mark.both_databases

FILED_AT = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
LANDLINE = "+915222234567"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, SEWAMITRA_PRIVACY_KEY="a key for the hashes of erased numbers")


def booked(phone: str | None = CITIZEN, call_sid: str | None = "CA0001", key: str | None = None) -> Intake:
    """What the phone line files for a caller who booked a plumber at Lucknow's GPO."""
    place = pincodes.lookup("226001")
    assert place is not None
    return Intake(
        service="plumber",
        place=place,
        phone=phone,
        language="en",
        channel=Channel.IVR,
        actor="ivr",
        filed_at=FILED_AT,
        idempotency_key=key,
        detail=(("call_sid", call_sid),) if call_sid else (),
    )


def rows(engine: sa.Engine, model: type) -> list:
    with Session(engine) as session:
        return list(session.exec(select(model).order_by(model.id)).all())  # type: ignore[attr-defined]


def test_a_filing_stores_the_caller_the_request_its_event_its_call_and_its_sms(
    engine: sa.Engine, settings: Settings
) -> None:
    filed = file_request(engine, settings, booked(), draw=lambda: "1000009")

    [caller] = rows(engine, Caller)
    assert (caller.phone, caller.language) == (CITIZEN, "en")
    [request] = rows(engine, ServiceRequest)
    assert filed == Filed(request.id, "1000009", None, None, sms_id=filed.sms_id, created=True)
    assert (request.number, request.caller_id, request.status, request.channel) == (
        "1000009",
        caller.id,
        RequestStatus.NEW,
        Channel.IVR,
    )
    assert (request.service_code, request.pincode, request.district) == ("plumber", "226001", "LUCKNOW")
    assert request.created_at == FILED_AT
    [event] = rows(engine, AuditEvent)
    assert (event.action, event.entity, event.entity_id, event.to_status, event.actor) == (
        "request.created",
        "service_request",
        request.id,
        "new",
        "ivr",
    )
    assert event.detail == {"call_sid": "CA0001"}
    [logged] = rows(engine, CallLog)
    assert (logged.call_sid, logged.from_number, logged.outcome, logged.request_id, logged.path) == (
        "CA0001",
        CITIZEN,
        "request_created",
        request.id,
        [],
    )
    [sms] = rows(engine, SmsLog)
    assert sms.id == filed.sms_id
    assert (sms.to_number, sms.template, sms.status, sms.direction.value, sms.attempts, sms.request_id) == (
        CITIZEN,
        "request_created",
        "pending",
        "outbound",
        0,
        request.id,
    )
    assert "1000009" in sms.body


def test_a_drawn_number_another_request_has_is_passed_over_for_the_next(engine: sa.Engine, settings: Settings) -> None:
    first = add_request(engine)
    taken = request_of(engine, first).number
    draws = iter([taken, taken, "2000004"])

    filed = file_request(engine, settings, booked(), draw=lambda: next(draws))

    assert filed.number == "2000004"
    assert request_of(engine, filed.id).number == "2000004"
    assert request_of(engine, first).number == taken  # the other request is as it was
    assert [caller.phone for caller in rows(engine, Caller)] == [CITIZEN]  # added once, not once a draw
    assert [event.entity_id for event in rows(engine, AuditEvent)] == [filed.id]
    [sms] = rows(engine, SmsLog)
    assert "2000004" in sms.body
    assert taken not in sms.body


def test_no_free_number_in_every_draw_fails_the_filing_and_files_nothing(engine: sa.Engine, settings: Settings) -> None:
    taken = request_of(engine, add_request(engine)).number
    refused = f"no free request number found in {MAX_NUMBER_DRAWS} draws"

    with pytest.raises(RuntimeError, match=refused):
        file_request(engine, settings, booked(), draw=lambda: taken)

    assert len(rows(engine, ServiceRequest)) == 1
    assert rows(engine, AuditEvent) == rows(engine, CallLog) == rows(engine, SmsLog) == []


def test_a_caller_whose_number_was_erased_books_as_the_same_caller(engine: sa.Engine, settings: Settings) -> None:
    assert settings.privacy_key
    hashed = phones.pseudonym(retention.normal(CITIZEN), settings.privacy_key)
    with session_scope(engine) as session:
        session.add(Caller(phone=hashed, language="hi"))
    [erased] = rows(engine, Caller)

    filed = file_request(engine, settings, booked())

    [caller] = rows(engine, Caller)
    assert (caller.id, caller.phone) == (erased.id, CITIZEN)  # their number given back, not a new caller
    assert request_of(engine, filed.id).caller_id == erased.id


def test_a_known_caller_books_again_under_their_row(engine: sa.Engine, settings: Settings) -> None:
    first = file_request(engine, settings, booked(call_sid="CA0001"))
    second = file_request(engine, settings, booked(call_sid="CA0002"))

    [caller] = rows(engine, Caller)
    assert [request_of(engine, filed.id).caller_id for filed in (first, second)] == [caller.id, caller.id]


def test_the_same_key_files_once_and_another_filing_under_it_is_refused(engine: sa.Engine, settings: Settings) -> None:
    first = file_request(engine, settings, booked(key="ivr:CA0001:6"))
    again = file_request(engine, settings, booked(key="ivr:CA0001:6"))

    assert (again.id, again.number, again.created, again.sms_id) == (first.id, first.number, False, None)
    assert len(rows(engine, ServiceRequest)) == len(rows(engine, SmsLog)) == 1
    other = dataclasses.replace(booked(key="api:1"), idempotency_digest="one")
    file_request(engine, settings, other)
    with pytest.raises(KeyReused):
        file_request(engine, settings, dataclasses.replace(other, idempotency_digest="another"))
    assert len(rows(engine, ServiceRequest)) == 2


def test_a_withheld_number_files_a_request_without_a_caller_or_an_sms(engine: sa.Engine, settings: Settings) -> None:
    filed = file_request(engine, settings, booked(phone=None))

    assert request_of(engine, filed.id).caller_id is None
    assert filed.sms_id is None
    assert rows(engine, Caller) == rows(engine, SmsLog) == []
    [logged] = rows(engine, CallLog)
    assert (logged.from_number, logged.request_id) == ("anonymous", filed.id)


def test_a_landline_is_a_caller_but_gets_no_sms(engine: sa.Engine, settings: Settings) -> None:
    filed = file_request(engine, settings, booked(phone=LANDLINE, call_sid=None))

    assert [caller.phone for caller in rows(engine, Caller)] == [LANDLINE]
    assert filed.sms_id is None
    assert rows(engine, SmsLog) == rows(engine, CallLog) == []  # no call filed it: no call to log
    assert len(rows(engine, AuditEvent)) == 1


def test_a_call_already_on_the_log_gets_the_request_it_filed(engine: sa.Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        session.add(CallLog(call_sid="CA0001", from_number=CITIZEN, status="ringing", path=["language"]))

    filed = file_request(engine, settings, booked(call_sid="CA0001"))

    [logged] = rows(engine, CallLog)
    assert (logged.outcome, logged.request_id, logged.status, logged.path) == (
        "request_created",
        filed.id,
        "ringing",
        ["language"],
    )
