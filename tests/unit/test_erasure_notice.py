"""When a notice before an erasure for lapsed purpose counts (dispatch/retention): one sent after the
citizen's last contact, and the erasure waits until it is `erasure_notice_hours` old, to the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.retention import notice_served, told_of_this_lapse

CONTACT = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)  # the citizen's last call
TOLD = CONTACT + timedelta(days=364)
HOURS_48_AFTER = TOLD + timedelta(hours=48)


@pytest.mark.parametrize(
    ("notice_at", "last_contact", "told"),
    [
        (None, CONTACT, False),  # never told
        (TOLD, CONTACT, True),
        (TOLD, None, True),  # no contact on record but the caller's row
        (CONTACT, CONTACT, False),  # at the very moment of a contact: not after it
        (CONTACT - timedelta(days=1), CONTACT, False),  # told of an earlier lapse, which the call ended
    ],
)
def test_a_notice_counts_for_the_lapse_after_the_last_contact(
    notice_at: datetime | None, last_contact: datetime | None, told: bool
) -> None:
    assert told_of_this_lapse(notice_at, last_contact) is told


def test_the_erasure_waits_until_the_notice_is_48_hours_old_to_the_second() -> None:
    for now, served in ((HOURS_48_AFTER - timedelta(seconds=1), False), (HOURS_48_AFTER, True)):
        assert notice_served(TOLD, CONTACT, now - timedelta(hours=48)) is served
    assert not notice_served(None, CONTACT, HOURS_48_AFTER)
    assert not notice_served(TOLD, TOLD + timedelta(hours=1), HOURS_48_AFTER)  # they rang after it
