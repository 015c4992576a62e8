"""Who is asked about a job: within their own service radius, or the wider one an agent chose for a
round; nearest first, then best rated, then least busy; nobody asked before."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

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


# -- free at the visit's time (issue 19) ---------------------------------------------------------------

NEXT_DOOR = Candidate(4, 0.3, None, 5.0)


def test_a_worker_busy_at_the_visits_time_is_asked_after_one_free_then_however_near() -> None:
    ranked = rank([NEXT_DOOR, NEAR], default_radius_km=10, busy_then=frozenset({4}))
    assert [c.worker_id for c in ranked] == [1, 4]


def test_among_those_busy_then_the_usual_order_holds() -> None:
    ranked = rank([FIFTEEN_KM, NEAR, NEXT_DOOR], default_radius_km=20, busy_then=frozenset({1, 4}))
    assert [c.worker_id for c in ranked] == [3, 4, 1]


candidates = st.lists(
    st.builds(
        Candidate,
        worker_id=st.integers(1, 40),
        distance_km=st.floats(0, 30, allow_nan=False),
        radius_km=st.one_of(st.none(), st.floats(1, 30, allow_nan=False)),
        rating=st.one_of(st.none(), st.floats(1, 5, allow_nan=False)),
        jobs_today=st.integers(0, 5),
    ),
    max_size=12,
    unique_by=lambda c: c.worker_id,
)


@given(found=candidates, busy=st.frozensets(st.integers(1, 40)))
def test_whoever_is_busy_then_no_free_worker_comes_after_them_and_no_one_is_dropped(
    found: list[Candidate], busy: frozenset[int]
) -> None:
    ranked = rank(found, default_radius_km=10, busy_then=busy)
    flags = [c.worker_id in busy for c in ranked]
    assert flags == sorted(flags)  # all the free ones, then all the busy ones
    assert {c.worker_id for c in ranked} == {c.worker_id for c in rank(found, default_radius_km=10)}
    free = [c for c in ranked if c.worker_id not in busy]
    assert free == [c for c in rank(found, default_radius_km=10) if c.worker_id not in busy]  # their order kept
