"""Who is asked about a job: within their own service radius, or the wider one an agent chose for a
round; nearest first, then best rated, then least busy; nobody asked before."""

from __future__ import annotations

from dispatch.matching import Candidate, rank

NEAR = Candidate(1, 2.0, None, 4.0)
OWN_FIVE_KM = Candidate(2, 7.0, 5.0, 5.0)  # serves only 5 km around home
FIFTEEN_KM = Candidate(3, 15.0, None, 4.5)


def test_each_worker_is_asked_within_their_own_radius_or_the_default() -> None:
    assert [c.worker_id for c in rank([FIFTEEN_KM, OWN_FIVE_KM, NEAR], default_radius_km=10)] == [1]


def test_a_round_an_agent_widened_reaches_further_than_any_workers_own_radius() -> None:
    ranked = rank([FIFTEEN_KM, OWN_FIVE_KM, NEAR], default_radius_km=10, reach_km=20)
    assert [c.worker_id for c in ranked] == [1, 2, 3]


def test_a_worker_asked_before_is_left_out_however_wide_the_round() -> None:
    ranked = rank([FIFTEEN_KM, NEAR], default_radius_km=10, reach_km=20, exclude=frozenset({1}))
    assert [c.worker_id for c in ranked] == [3]
