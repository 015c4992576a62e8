"""Which worker a bulk change of availability may change, and why not: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch.availability import NotChanged, why_not
from storage.models import Worker

AGENCY, OTHER = 7, 8


def worker(
    *, provider_id: int | None = AGENCY, available: bool = False, active: bool = True, suspended: bool = False
) -> Worker:
    return Worker(
        name="Ramesh",
        phone="+919800000001",
        pincode="226001",
        district="LUCKNOW",
        latitude=26.85,
        longitude=80.95,
        provider_id=provider_id,
        available=available,
        active=active,
        suspended_at=datetime(2026, 12, 1, tzinfo=UTC) if suspended else None,
    )


@pytest.mark.parametrize(
    ("who", "available", "agency", "why"),
    [
        (worker(), True, AGENCY, None),
        (worker(), True, None, None),  # staff: any agency's
        (worker(provider_id=OTHER), True, AGENCY, NotChanged.NOT_YOURS),
        (worker(provider_id=None), True, AGENCY, NotChanged.NOT_YOURS),  # the helpline's own, not an agency's
        (None, True, AGENCY, NotChanged.NOT_YOURS),
        (None, True, None, NotChanged.NOT_YOURS),
        (worker(suspended=True), True, AGENCY, NotChanged.SUSPENDED),
        (worker(suspended=True, available=True), False, AGENCY, None),
        (worker(active=False), True, AGENCY, NotChanged.INACTIVE),
        (worker(active=False, available=True), False, AGENCY, None),  # making busy is always allowed
        (worker(available=True), True, AGENCY, NotChanged.ALREADY),
        (worker(provider_id=OTHER, available=True), True, AGENCY, NotChanged.NOT_YOURS),  # not "already": not theirs
    ],
)
def test_why_not(who: Worker | None, available: bool, agency: int | None, why: NotChanged | None) -> None:
    assert why_not(who, available, agency) is why
