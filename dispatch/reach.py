"""Who a new round of offers would reach, worked out before an agent starts it: the workers it
would ask, or why there are none (nobody within the radius; those in range already said no, let the
offer run out, or hold it still) and the nearest worker beyond, so that "Dispatch again" never
starts a round only to escalate again the same second.

Neighbouring districts are reached by distance, not by a table of which district borders which:
dispatch searches around the request's point whatever the district (a worker across the border 3 km
away is nearer than one of the same district 40 km away), so widening the radius is what reaches
the next district's workers, and the agent sees each worker's district."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.geo import distance_km
from core.settings import Dispatch
from dispatch.matching import Candidate, rank, reaches
from dispatch.offers import IN_HAND, asked_before, busy_then
from storage.models import (
    Offer,
    OfferStatus,
    ServiceRequest,
    VerificationStatus,
    Worker,
    WorkerSkill,
)

KM_PER_DEGREE = 111.2  # of latitude; of longitude, times the cosine of the latitude
SHOWN = 5  # workers named in the preview


@dataclass(frozen=True)
class Reach:
    """What a round within `radius_km` would do."""

    radius_km: float
    asked: tuple[tuple[Worker, float], ...] = ()  # who it would offer the job to first, nearest first
    passed_over: int = 0  # in range, but asked before about this request: not asked again
    beyond: tuple[Worker, float] | None = None  # the nearest who could be asked, further out (up to the maximum)

    @property
    def anyone(self) -> bool:
        return bool(self.asked)


def new_round(
    session: Session, request: ServiceRequest, reach_km: float | None, rules: Dispatch, now: datetime | None = None
) -> Reach:
    """Who a round reaching `reach_km` (None: each worker's own radius) would ask, by the rules
    dispatch applies: skilled, active, available, police-verified, (unless parallel jobs are allowed)
    free and not asked about another job, and not asked about this one before; with parallel jobs and
    `now`, those free at the visit's time first."""
    radius = reach_km or rules.default_radius_km
    if request.latitude is None or request.longitude is None:
        return Reach(radius)
    lat, lon = request.latitude, request.longitude
    found = [
        (w, distance_km(lat, lon, w.latitude, w.longitude))
        for w in _offerable(session, request, rules.max_radius_km, rules)
    ]
    by_id = {w.id: (w, km) for w, km in found if w.id is not None}
    before = asked_before(session, request.id or 0)
    candidates = [Candidate(w.id or 0, km, w.service_radius_km, w.rating) for w, km in found]
    busy = frozenset[int]()
    if rules.allow_parallel_jobs and now is not None:
        busy = busy_then(session, request, [c.worker_id for c in candidates], now)
    ranked = rank(
        candidates, default_radius_km=rules.default_radius_km, exclude=before, reach_km=reach_km, busy_then=busy
    )
    in_range = rank(candidates, default_radius_km=rules.default_radius_km, reach_km=reach_km)
    further = sorted(
        (km, w.id or 0)
        for w, km in found
        if w.id not in before and km <= rules.max_radius_km and not _reached(w, km, reach_km, rules)
    )
    return Reach(
        radius,
        asked=tuple(by_id[c.worker_id] for c in ranked[:SHOWN]),
        passed_over=sum(1 for c in in_range if c.worker_id in before),
        beyond=by_id[further[0][1]] if further else None,
    )


def _reached(worker: Worker, km: float, reach_km: float | None, rules: Dispatch) -> bool:
    return reaches(km, worker.service_radius_km, rules.default_radius_km, reach_km)


def _offerable(session: Session, request: ServiceRequest, radius_km: float, rules: Dispatch) -> list[Worker]:
    """Workers within a box around the request who could take an offer now (dispatch's own test)."""
    assert request.latitude is not None
    assert request.longitude is not None
    dlat = radius_km / KM_PER_DEGREE
    dlon = radius_km / (KM_PER_DEGREE * max(math.cos(math.radians(request.latitude)), 0.01))
    skilled = sa.exists().where(
        col(WorkerSkill.worker_id) == col(Worker.id), col(WorkerSkill.service_code) == request.service_code
    )
    query = select(Worker).where(
        col(Worker.latitude).between(request.latitude - dlat, request.latitude + dlat),
        col(Worker.longitude).between(request.longitude - dlon, request.longitude + dlon),
        col(Worker.active).is_(True),
        col(Worker.available).is_(True),
        Worker.police_verification == VerificationStatus.VERIFIED,
        skilled,
    )
    if not rules.allow_parallel_jobs:
        on_a_job = sa.exists().where(
            col(ServiceRequest.worker_id) == col(Worker.id), col(ServiceRequest.status).in_(IN_HAND)
        )
        asked_elsewhere = sa.exists().where(
            col(Offer.worker_id) == col(Worker.id),
            col(Offer.status) == OfferStatus.PENDING,
            col(Offer.request_id) != request.id,
        )
        query = query.where(~on_a_job, ~asked_elsewhere)
    return list(session.exec(query.limit(2000)).all())
