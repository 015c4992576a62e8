"""The slot calendar: which visits a citizen may book at a given moment, and how one reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import slots
from core.settings import Settings, load_settings


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def ist(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of December 2026 in India (UTC+5:30), as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=5, minutes=30)


def test_early_in_the_morning_all_of_today_and_tomorrow_are_open(settings: Settings) -> None:
    found = slots.upcoming(settings, ist(3, 6))
    assert [slot.key for slot in found] == [
        "2026-12-03/morning",
        "2026-12-03/afternoon",
        "2026-12-03/evening",
        "2026-12-04/morning",
        "2026-12-04/afternoon",
        "2026-12-04/evening",
    ]
    assert (found[0].starts_at, found[0].ends_at) == (ist(3, 8), ist(3, 12))


def test_a_slot_begun_or_within_the_lead_time_is_skipped(settings: Settings) -> None:
    # 11:30 IST: the afternoon starts in 30 minutes, less than the hour's notice.
    assert [slot.key for slot in slots.upcoming(settings, ist(3, 11, 30))][:2] == [
        "2026-12-03/evening",
        "2026-12-04/morning",
    ]
    # exactly an hour before the afternoon is enough
    assert slots.upcoming(settings, ist(3, 11))[0].key == "2026-12-03/afternoon"


def test_closed_days_and_dates_are_skipped(settings: Settings) -> None:
    rules = settings.slots.model_copy(
        update={"days": ("mon", "tue", "wed", "thu", "fri", "sat"), "closed_dates": (date(2026, 12, 5),)}
    )
    closed = settings.model_copy(update={"slots": rules})
    # Friday 4 Dec late: Saturday 5 is a holiday and Sunday 6 no working day, so nothing within two days.
    assert slots.upcoming(closed, ist(4, 21)) == []
    assert {slot.day for slot in slots.upcoming(closed, ist(4, 6))} == {date(2026, 12, 4)}


def test_a_key_finds_only_an_open_slot(settings: Settings) -> None:
    now = ist(3, 13)
    assert slots.find(settings, " 2026-12-03/EVENING ", now) is not None
    assert slots.find(settings, "2026-12-03/morning", now) is None  # past
    assert slots.find(settings, "2026-12-09/morning", now) is None  # beyond the days ahead
    assert slots.find(settings, "2026-12-04/night", now) is None
    assert slots.find(settings, "=cmd|' /C calc'!A0", now) is None


def test_a_slot_reads_in_the_callers_language(settings: Settings) -> None:
    now = ist(3, 9)
    tomorrow = slots.find(settings, "2026-12-04/evening", now)
    assert tomorrow is not None
    assert slots.describe(settings, tomorrow.starts_at, tomorrow.ends_at, "en", now) == "tomorrow evening (16:00-20:00)"
    assert slots.describe(settings, tomorrow.starts_at, tomorrow.ends_at, "hi", now) == "कल शाम (16:00-20:00)"
    # a day later it is today's; further off it is a date; hours no period has are read as hours
    assert slots.describe(settings, tomorrow.starts_at, tomorrow.ends_at, "en", ist(4, 7)).startswith("today")
    assert slots.describe(settings, ist(10, 9), ist(10, 11), "hi", now) == "10 दिसंबर 09:00-11:00"


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)))
def test_every_open_slot_is_in_order_in_the_future_and_on_a_working_day(now: datetime) -> None:
    settings = load_settings()
    found = slots.upcoming(settings, now)
    assert found == sorted(found, key=lambda slot: slot.starts_at)
    assert all(slot.starts_at >= now + timedelta(minutes=settings.slots.lead_minutes) for slot in found)
    assert all(slot.ends_at > slot.starts_at for slot in found)
    assert all(slots.find(settings, slot.key, now) == slot for slot in found)


def test_a_slot_is_spoken_with_its_hours_in_words(settings: Settings) -> None:
    now = ist(3, 9)
    starts, ends = ist(4, 16), ist(4, 20)
    assert slots.describe(settings, starts, ends, "en", now, spoken=True) == "tomorrow evening, 16:00 to 20:00"
    assert slots.describe(settings, starts, ends, "hi", now, spoken=True) == "कल शाम, 16:00 से 20:00 तक"


def test_no_slot_reads_as_soon_as_possible(settings: Settings) -> None:
    assert slots.when(settings, None, None, "en", ist(3, 9)) == "as soon as possible"
    assert slots.when(settings, None, None, "hi", ist(3, 9)) == "जल्द से जल्द"
    assert slots.when(settings, ist(4, 8), ist(4, 12), "en", ist(3, 9)) == "tomorrow morning (08:00-12:00)"


def test_a_key_parses_to_its_slot_open_or_not_and_back(settings: Settings) -> None:
    gone = slots.parse(settings, "2026-12-03/morning")
    assert gone is not None
    assert (gone.starts_at, gone.ends_at) == (ist(3, 8), ist(3, 12))
    assert slots.key_of(settings, gone.starts_at, gone.ends_at) == "2026-12-03/morning"
    assert slots.key_of(settings, ist(3, 9), ist(3, 11)) == "2026-12-03/09:00-11:00"  # no period has these hours
    for nonsense in ("", "2026-12-03", "2026-12-03/night", "2026-02-30/morning", "20261203/morning", "x" * 60):
        assert slots.parse(settings, nonsense) is None


def test_a_visit_as_soon_as_possible_takes_up_the_next_hours() -> None:
    now = ist(3, 10)
    assert slots.window(None, None, now) == (now, now + timedelta(hours=slots.ASAP_HOURS))
    assert slots.window(ist(4, 8), ist(4, 12), now) == (ist(4, 8), ist(4, 12))
