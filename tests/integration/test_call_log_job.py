"""A status callback handed to a job by a helpline from before `calllog.keep` (the database was out of
reach) is logged when the job runs: from the platform-neutral call turn, and from the Twilio form a
job queued before that held."""

from __future__ import annotations

import dataclasses
import pickle

from sqlmodel import Session, select

from dispatch.context import JobContext
from ivr import calllog
from storage.models import CallLog, Direction
from telephony.twilio.twiml import call_turn

FORM = {
    "CallSid": "CA" + "7" * 32,
    "From": "+919876543210",
    "To": "+911204567890",
    "Direction": "inbound",
    "CallStatus": "completed",
    "CallDuration": "42",
}
SENT_AT = "2026-12-03T06:00:00+00:00"


def logged(installed: JobContext) -> list[CallLog]:
    with Session(installed.engine) as session:
        return list(session.exec(select(CallLog)).all())


def test_a_call_turn_handed_to_a_job_is_logged_when_it_runs(installed: JobContext) -> None:
    fields = pickle.loads(pickle.dumps(dataclasses.asdict(call_turn(FORM))))  # noqa: S301 (as RQ kept a job's arguments)
    assert calllog.record_when_back(fields, None, SENT_AT) == "logged"
    (log,) = logged(installed)
    assert (log.call_sid, log.from_number, log.to_number, log.status, log.duration_s, log.direction) == (
        FORM["CallSid"],
        "+919876543210",
        "+911204567890",
        "completed",
        42,
        Direction.INBOUND,
    )
    assert log.ended_at is not None
    assert log.outcome == "no_flow"


def test_a_job_queued_with_twilios_form_before_the_call_turn_is_still_logged(installed: JobContext) -> None:
    outbound = {**FORM, "Direction": "outbound-api", "CallStatus": "no-answer", "CallDuration": ""}
    assert calllog.record_when_back(outbound, None, SENT_AT) == "logged"
    (log,) = logged(installed)
    assert (log.call_sid, log.status, log.duration_s, log.direction) == (
        FORM["CallSid"],
        "no-answer",
        None,
        Direction.OUTBOUND,
    )
