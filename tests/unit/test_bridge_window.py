"""Who may be put through to whom, and until when (dispatch/bridge): the window is the job assigned,
or done within `privacy.bridged_calls.after_completion_hours`, to the second; never a cancelled job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.clock import FrozenClock
from core.settings import BridgedCalls
from dispatch.bridge import Closed, time_limit_s, why_closed
from storage.models import RequestStatus, ServiceRequest

DONE_AT = datetime(2030, 1, 1, 6, 0, tzinfo=UTC)
WINDOW = BridgedCalls()  # 24 hours, 15 minutes


def job(status: RequestStatus, *, worker: int | None = 7, done: datetime | None = DONE_AT) -> ServiceRequest:
    return ServiceRequest(
        number="9320413",
        service_code="plumber",
        pincode="226001",
        district="LUCKNOW",
        status=status,
        worker_id=worker,
        completed_at=done,
    )


def test_an_assigned_job_is_open_for_calls_whenever() -> None:
    assert why_closed(job(RequestStatus.ASSIGNED, done=None), DONE_AT + timedelta(days=30), WINDOW) is None


@pytest.mark.parametrize("status", [RequestStatus.COMPLETED, RequestStatus.CLOSED])
def test_a_done_job_stays_open_24_hours_to_the_second(status: RequestStatus) -> None:
    clock = FrozenClock(DONE_AT + timedelta(hours=24))
    assert why_closed(job(status), clock.now(), WINDOW) is None
    clock.set(DONE_AT + timedelta(hours=24, seconds=1))
    assert why_closed(job(status), clock.now(), WINDOW) is Closed.DONE_LONG_AGO


def test_the_window_is_the_operators_to_set() -> None:
    two_hours = BridgedCalls(after_completion_hours=2, time_limit_minutes=5)
    assert why_closed(job(RequestStatus.COMPLETED), DONE_AT + timedelta(hours=3), two_hours) is Closed.DONE_LONG_AGO
    assert (time_limit_s(WINDOW), time_limit_s(two_hours)) == (900, 300)


def test_a_cancelled_job_is_closed_even_with_its_worker() -> None:
    assert why_closed(job(RequestStatus.CANCELLED, done=None), DONE_AT, WINDOW) is Closed.CANCELLED


@pytest.mark.parametrize("status", [RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ESCALATED])
def test_a_request_no_worker_holds_has_nobody_to_call(status: RequestStatus) -> None:
    assert why_closed(job(status, worker=None, done=None), DONE_AT, WINDOW) is Closed.NO_WORKER
