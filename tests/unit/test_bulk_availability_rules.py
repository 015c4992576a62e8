"""Which worker a bulk change of availability may change, and why not: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch.availability import NotChanged, why_not
from storage.models import Worker

AGENCY, OTHER = 7, 8


def worker(**changes: object) -> Worker:
    fields: dict[str, object] = {"name": "Ramesh", "phone": "+919800000001", "pincode": "226001"}
    fields.update({"provider_id": AGENCY, "available": False, "active": True, **changes})
    return Worker(**fields)


@pytest.mark.parametrize(
    ("who", "available", "agency", "why"),
    [
        (worker(), True, AGENCY, None),
        (worker(), True, None, None),  # staff: any agency's
        (worker(provider_id=OTHER), True, AGENCY, NotChanged.NOT_YOURS),
        (worker(provider_id=None), True, AGENCY, NotChanged.NOT_YOURS),  # the helpline's own, not an agency's
        (None, True, AGENCY, NotChanged.NOT_YOURS),
        (None, True, None, NotChanged.NOT_YOURS),
        (worker(suspended_at=datetime(2026, 12, 1, tzinfo=UTC)), True, AGENCY, NotChanged.SUSPENDED),
        (worker(suspended_at=datetime(2026, 12, 1, tzinfo=UTC), available=True), False, AGENCY, None),
        (worker(active=False), True, AGENCY, NotChanged.INACTIVE),
        (worker(active=False, available=True), False, AGENCY, None),  # making busy is always allowed
        (worker(available=True), True, AGENCY, NotChanged.ALREADY),
        (worker(provider_id=OTHER, available=True), True, AGENCY, NotChanged.NOT_YOURS),  # not "already": not theirs
    ],
)
def test_why_not(who: Worker | None, available: bool, agency: int | None, why: NotChanged | None) -> None:
    assert why_not(who, available, agency) is why
