"""The quality rules, pure: when a worker's ratings or complaints put them on the review list, when a
police verification expires, and when the agency is reminded of it (once per expiry)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.settings import WorkersQuality
from dispatch import quality
from storage.models import VerificationStatus, Worker

RULES = WorkersQuality(
    rating_floor=3.0,
    rated_jobs=5,
    complaints=3,
    complaint_window_days=30,
    police_verification_valid_days=730,
    police_reminder_days_before=30,
)
TODAY = date(2026, 12, 3)


def worker(verified_on: date | None = date(2025, 1, 1), **changes: Any) -> Worker:
    fields: dict[str, Any] = {"police_verification": VerificationStatus.VERIFIED, **changes}
    return Worker(
        name="Ramesh",
        phone="+919800000001",
        pincode="226001",
        district="LUCKNOW",
        latitude=26.8,
        longitude=80.9,
        police_verified_on=verified_on,
        **fields,
    )


# -- the review list --------------------------------------------------------------------------------


def test_an_average_under_the_floor_over_the_last_n_rated_jobs_puts_a_worker_on_the_list() -> None:
    reason = quality.review_reason([2, 3, 3, 2, 4], [], RULES, TODAY)
    assert reason == "average rating 2.80 over the last 5 rated jobs, under 3"


def test_fewer_than_n_rated_jobs_are_not_judged_by_their_average() -> None:
    assert quality.review_reason([1, 1, 1, 1], [], RULES, TODAY) is None


def test_only_the_last_n_ratings_count_newest_first() -> None:
    assert quality.review_reason([5, 5, 5, 5, 5, 1, 1, 1], [], RULES, TODAY) is None
    assert quality.review_reason([1, 1, 1, 5, 5, 5, 5, 5], [], RULES, TODAY) is not None


def test_an_average_at_the_floor_is_not_under_it() -> None:
    assert quality.review_reason([3, 3, 3, 3, 3], [], RULES, TODAY) is None


def test_m_complaints_within_the_window_put_a_worker_on_the_list() -> None:
    days = [TODAY, TODAY - timedelta(days=10), TODAY - timedelta(days=29)]
    assert quality.review_reason([], days, RULES, TODAY) == "3 complaints in 30 days"


def test_complaints_older_than_the_window_do_not_count() -> None:
    days = [TODAY, TODAY - timedelta(days=10), TODAY - timedelta(days=30)]
    assert quality.review_reason([], days, RULES, TODAY) is None


@given(
    ratings=st.lists(st.integers(1, 5), max_size=20),
    ages=st.lists(st.integers(0, 400), max_size=10),
)
def test_the_list_is_exactly_a_low_average_over_n_or_m_complaints_in_the_window(
    ratings: list[int], ages: list[int]
) -> None:
    complaints = [TODAY - timedelta(days=age) for age in ages]
    reason = quality.review_reason(ratings, complaints, RULES, TODAY)
    last = ratings[: RULES.rated_jobs]
    low_average = len(last) == RULES.rated_jobs and sum(last) / len(last) < RULES.rating_floor
    many_complaints = sum(1 for age in ages if age < RULES.complaint_window_days) >= RULES.complaints
    assert (reason is not None) == (low_average or many_complaints)
    if low_average:
        assert reason is not None
        assert reason.startswith("average rating")


# -- police verification ----------------------------------------------------------------------------


def test_a_verification_expires_its_valid_days_after_it_was_made() -> None:
    assert quality.expires_on(date(2025, 1, 1), 730) == date(2027, 1, 1)
    assert quality.expires_on(date(2025, 1, 1), 0) is None  # configured not to expire
    assert quality.expires_on(None, 730) is None  # no date recorded


def test_a_worker_past_the_expiry_may_not_visit_and_on_the_day_before_may() -> None:
    verified = worker(date(2025, 1, 1))
    assert quality.may_visit(verified, date(2026, 12, 31), 730) is None
    assert quality.may_visit(verified, date(2027, 1, 1), 730) == quality.LAPSED


def test_suspended_deactivated_and_unverified_workers_may_not_visit() -> None:
    assert quality.may_visit(worker(suspended_at=None), TODAY, 730) is None
    assert quality.may_visit(worker(suspended_at=datetime(2026, 12, 1, tzinfo=UTC)), TODAY, 730) == quality.SUSPENDED
    assert quality.may_visit(worker(active=False), TODAY, 730) == "deactivated"
    pending = worker(police_verification=VerificationStatus.PENDING)
    assert quality.may_visit(pending, TODAY, 730) == "not police-verified"


def test_the_agency_is_reminded_within_the_days_before_and_once_per_expiry() -> None:
    verified_on = date(2025, 1, 1)  # expires 2027-01-01
    expiry = date(2027, 1, 1)
    assert quality.reminder_due(verified_on, date(2026, 12, 1), RULES, None) is None  # 31 days before
    assert quality.reminder_due(verified_on, date(2026, 12, 2), RULES, None) == expiry  # 30 days before
    assert quality.reminder_due(verified_on, date(2026, 12, 20), RULES, expiry) is None  # told already
    assert quality.reminder_due(verified_on, expiry, RULES, None) is None  # expired: too late to remind
    renewed = date(2026, 12, 20)  # verified again: a new expiry, a new reminder in time
    assert quality.reminder_due(renewed, date(2028, 12, 1), RULES, expiry) == date(2028, 12, 19)


@given(
    verified_on=st.dates(date(2020, 1, 1), date(2030, 1, 1)),
    today=st.dates(date(2020, 1, 1), date(2033, 1, 1)),
    valid_days=st.integers(1, 2000),
    before=st.integers(0, 400),
)
def test_a_reminder_is_due_only_before_the_expiry_within_the_days_before_and_then_never_again(
    verified_on: date, today: date, valid_days: int, before: int
) -> None:
    rules = RULES.model_copy(
        update={"police_verification_valid_days": valid_days, "police_reminder_days_before": before}
    )
    due = quality.reminder_due(verified_on, today, rules, None)
    expiry = verified_on + timedelta(days=valid_days)
    assert (due is not None) == (today < expiry and (expiry - today).days <= before)
    if due is not None:
        assert due == expiry
        assert quality.reminder_due(verified_on, today, rules, due) is None  # once per expiry
    left = quality.days_left(verified_on, today, valid_days)
    assert left is not None
    assert (left <= 0) == (quality.may_visit(worker(verified_on), today, valid_days) == quality.LAPSED)
