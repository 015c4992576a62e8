"""When a citizen may change their own request without an agent (`changes:` in config.yaml): while
no worker has it, and until `free_until_hours` before its slot; a job in hand with no slot, or a
visit too close, is an agent's to decide; a finished or cancelled request is closed to changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.settings import Changes
from dispatch.changes import Verdict, Why, verdict
from storage.models import RequestStatus, ServiceRequest

NOW = datetime(2030, 1, 1, 3, 30, tzinfo=UTC)
RULES = Changes()  # free while unassigned; until 4 hours before the slot


def request(status: RequestStatus, slot_in: timedelta | None) -> ServiceRequest:
    starts = NOW + slot_in if slot_in is not None else None
    return ServiceRequest(
        number="1234567",
        service_code="plumber",
        pincode="226001",
        district="LUCKNOW",
        status=status,
        slot_starts_at=starts,
        slot_ends_at=starts + timedelta(hours=4) if starts else None,
    )


@pytest.mark.parametrize(
    ("status", "slot_in", "expected"),
    [
        (RequestStatus.NEW, None, Verdict.FREE),
        (RequestStatus.OFFERED, timedelta(hours=1), Verdict.FREE),  # no worker has it yet
        (RequestStatus.ESCALATED, timedelta(minutes=5), Verdict.FREE),
        (RequestStatus.ASSIGNED, timedelta(hours=4), Verdict.FREE),
        (RequestStatus.ASSIGNED, timedelta(hours=3, minutes=59), Verdict.AGENT),
        (RequestStatus.ASSIGNED, None, Verdict.AGENT),  # as soon as possible: the worker may be on the way
        (RequestStatus.COMPLETED, timedelta(hours=10), Verdict.CLOSED),
        (RequestStatus.CLOSED, None, Verdict.CLOSED),
        (RequestStatus.CANCELLED, timedelta(hours=10), Verdict.CLOSED),
    ],
)
def test_the_policy(status: RequestStatus, slot_in: timedelta | None, expected: Verdict) -> None:
    assert verdict(RULES, request(status, slot_in), NOW) is expected


def test_without_free_unassigned_changes_the_slot_rule_holds_for_every_request() -> None:
    strict = Changes(free_while_unassigned=False, free_until_hours=2)
    assert verdict(strict, request(RequestStatus.OFFERED, timedelta(hours=1)), NOW) is Verdict.AGENT
    assert verdict(strict, request(RequestStatus.OFFERED, timedelta(hours=2)), NOW) is Verdict.FREE
    assert verdict(strict, request(RequestStatus.NEW, None), NOW) is Verdict.FREE


def test_a_reason_reads_in_english_and_carries_its_hindi() -> None:
    late = RULES.reason("worker_late")
    assert late is not None
    assert Why(late, "rang twice").text() == "the worker is too late: rang twice"
    assert Why(late).detail() == {"reason_key": "worker_late", "reason_hi": "कारीगर बहुत देर से"}
    assert Why(None, "duplicate").text() == "duplicate"
    assert Why().text() == "no reason given"
    assert RULES.reason("bored") is None
