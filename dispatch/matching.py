"""Which worker gets the offer: a pure ranking over candidates the GEO index found nearby.

Dispatch has Redis rank them (geoindex.ranked) by the same rules in Lua, dispatch/matching.lua: a
change here is a change there, and tests/integration/test_ranked_nearby.py holds the two equal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A worker the index found near the request, with what the ranking needs to know."""

    worker_id: int
    distance_km: float
    radius_km: float | None  # the worker's own service radius; None: the configured default
    rating: float | None
    jobs_today: int = 0


def rank(
    candidates: Iterable[Candidate],
    *,
    default_radius_km: float,
    exclude: frozenset[int] = frozenset(),
    reach_km: float | None = None,
    busy_then: frozenset[int] = frozenset(),
) -> list[Candidate]:
    """Those who serve this spot (within their own radius, or the wider `reach_km` an agent chose for
    this round): first those free at the visit's time (`busy_then`: a job in hand whose slot overlaps
    it), then nearest, best rated, least busy today; a worker already asked about this request is not
    asked again."""
    eligible = [
        c
        for c in candidates
        if c.worker_id not in exclude and reaches(c.distance_km, c.radius_km, default_radius_km, reach_km)
    ]
    return sorted(eligible, key=lambda c: (c.worker_id in busy_then, *_order(c)))


def reaches(distance_km: float, own_radius_km: float | None, default_radius_km: float, reach_km: float | None) -> bool:
    """Whether a worker this far away is asked: within their own radius, or within the round's reach."""
    return distance_km <= max(own_radius_km or default_radius_km, reach_km or 0.0)


def _order(candidate: Candidate) -> tuple[float, float, int, int]:
    # Distances within 100 m are a tie: a rating is worth more than a street's length.
    return (round(candidate.distance_km, 1), -(candidate.rating or 0.0), candidate.jobs_today, candidate.worker_id)
