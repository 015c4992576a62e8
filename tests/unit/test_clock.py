"""The one clock: the system's tells the time in UTC; a frozen one stands still until moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.clock import SYSTEM, Clock, FrozenClock

IST = timezone(timedelta(hours=5, minutes=30))


def test_the_system_clock_tells_aware_utc_time() -> None:
    before = datetime.now(UTC)
    now = SYSTEM.now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_a_frozen_clock_stands_still_until_moved() -> None:
    clock = FrozenClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    read: Clock = clock  # what jobs and views are handed
    assert read.now() == read.now() == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert clock.advance(timedelta(minutes=5)) == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    clock.set(datetime(2030, 6, 1, tzinfo=UTC))
    assert clock.now() == datetime(2030, 6, 1, tzinfo=UTC)


def test_a_frozen_clock_keeps_its_moment_in_utc() -> None:
    clock = FrozenClock(datetime(2030, 1, 1, 17, 30, tzinfo=IST))
    assert clock.now() == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        FrozenClock(datetime(2030, 1, 1, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        FrozenClock(datetime(2030, 1, 1, tzinfo=UTC)).set(datetime(2030, 1, 2))
