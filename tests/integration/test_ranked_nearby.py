"""The ranking Redis does next to the worker index (`geoindex.ranked`: dispatch/matching.lua and
nearby.lua) is matching.rank's, to the last tie: the same workers, in the same order, as ranking in
Python what `geoindex.nearby` reads, on random data in a real Redis."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import redis
from hypothesis import given
from hypothesis import strategies as st

from dispatch import geoindex
from dispatch.matching import Candidate, rank
from storage.models import Worker
from tests.chaos import RedisServer

LUCKNOW = (26.8467, 80.9462)
TODAY = date(2026, 12, 3)
SKILL = "plumber"

# matching.lua's rules alone, on candidates handed in as rank() is handed them: five strings each
# (id, distance, own radius, rating, jobs today; "" where not set), after the default radius and reach.
RULES = (
    Path(geoindex.__file__).with_name("matching.lua").read_text()
    + """
local default_radius, reach = tonumber(ARGV[1]), tonumber(ARGV[2])
local c = columns()
for i = 3, #ARGV, 5 do
  if reaches(tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), default_radius, reach) then
    add(c, ARGV[i], ARGV[i + 1], ARGV[i + 3], ARGV[i + 4])
  end
end
local ids = {}
for place, k in ipairs(rank(c)) do
  ids[place] = c.id[k]
end
return ids
"""
)
TENTHS = (
    Path(geoindex.__file__).with_name("matching.lua").read_text()
    + """
local out = {}
for i, distance in ipairs(ARGV) do
  out[i] = tenths(tonumber(distance))
end
return out
"""
)


def ranked_by_lua(
    connection: redis.Redis, candidates: Sequence[Candidate], default: float, reach: float | None
) -> list[int]:
    args: list[str | float] = [default, reach or 0.0]
    for c in candidates:
        args += [c.worker_id, repr(c.distance_km), _text(c.radius_km), _text(c.rating), c.jobs_today]
    return [int(worker_id) for worker_id in connection.eval(RULES, 0, *args)]


def _text(number: float | None) -> str:
    return "" if number is None else repr(number)


# Distances and ratings drawn often from a few values, so that ties (to 100 m, in rating, in jobs)
# and distances on a tie of Python's round() (x.x5) are common.
distances = st.one_of(
    st.floats(0, 60, allow_nan=False),
    st.sampled_from([0.0, 0.05, 0.15, 0.25, 0.35, 0.45, 0.75, 1.05, 2.25, 2.35, 9.95, 10.0, 10.05, 14.95]),
)
ratings = st.one_of(st.none(), st.floats(0, 5, allow_nan=False), st.sampled_from([0.0, 3.0, 4.5, 4.333333333333333]))
candidates = st.lists(
    st.builds(
        Candidate,
        worker_id=st.integers(1, 10_000),
        distance_km=distances,
        radius_km=st.one_of(st.none(), st.just(0.0), st.floats(0.1, 60, allow_nan=False)),
        rating=ratings,
        jobs_today=st.integers(0, 3),
    ),
    max_size=40,
    unique_by=lambda c: c.worker_id,
)


@given(
    found=candidates,
    default=st.sampled_from([5.0, 10.0, 12.5]),
    reach=st.one_of(st.none(), st.floats(0, 60, allow_nan=False)),
)
def test_the_lua_rules_choose_and_order_as_matching_rank_does(
    redis_client: redis.Redis, found: list[Candidate], default: float, reach: float | None
) -> None:
    expected = [c.worker_id for c in rank(found, default_radius_km=default, reach_km=reach)]

    assert ranked_by_lua(redis_client, found, default, reach) == expected


def test_distances_round_to_tenths_as_python_rounds_them(redis_client: redis.Redis) -> None:
    ties = [m / 20 for m in range(1, 3001, 2)]  # x.x5: a tie in decimal, rarely in binary
    printed = [round(t + step, 4) for t in ties for step in (-0.0001, 0.0, 0.0001)]  # as GEOSEARCH prints them
    binary_neighbours = [math.nextafter(t, direction) for t in ties for direction in (0.0, math.inf)]
    rng = random.Random(5)
    drawn = [rng.uniform(0, 200) for _ in range(3000)] + [k / 4 for k in range(800)]  # k / 4: exact ties
    for chunk in (ties, printed, binary_neighbours, drawn):
        tenths = redis_client.eval(TENTHS, 0, *map(repr, chunk))

        assert tenths == [round(round(x, 1) * 10) for x in chunk]


@given(seed=st.integers(0, 2**32 - 1))
def test_the_index_ranks_as_python_ranks_what_nearby_reads(redis_client: redis.Redis, seed: int) -> None:
    rng = random.Random(seed)
    redis_client.flushdb()
    place_workers(redis_client, rng, 300)
    for _ in range(10):
        latitude, longitude = near(rng, *LUCKNOW, km=8)
        radius = rng.choice([5.0, 10.0, 15.0, 30.0])
        default = rng.choice([5.0, 10.0])
        reach = rng.choice([None, None, 3.0, 12.0, 25.0])
        found = geoindex.nearby(redis_client, SKILL, latitude, longitude, radius, TODAY)

        ours = geoindex.ranked(
            redis_client, SKILL, latitude, longitude, radius, TODAY, default_radius_km=default, reach_km=reach
        )

        assert ours == rank(found, default_radius_km=default, reach_km=reach)
        for wanted in (1, 2, 9, 40):  # many share a home: the wanted often end inside a tie to 100 m
            first = geoindex.ranked(
                redis_client,
                SKILL,
                latitude,
                longitude,
                radius,
                TODAY,
                default_radius_km=default,
                reach_km=reach,
                wanted=wanted,
            )
            assert first == ours[:wanted]


def place_workers(connection: redis.Redis, rng: random.Random, count: int) -> None:
    """Workers around Lucknow, many sharing a home (the same distance from anywhere), a few ratings and
    radii between them, some with jobs today: every tie of the ranking comes up."""
    homes = [near(rng, *LUCKNOW, km=15) for _ in range(count // 3)]
    with connection.pipeline() as pipe:
        for worker_id in range(1, count + 1):
            latitude, longitude = rng.choice(homes)
            worker = Worker(
                id=worker_id,
                name="",
                phone="",
                pincode="226001",
                district="LUCKNOW",
                latitude=latitude,
                longitude=longitude,
                service_radius_km=rng.choice([None, None, None, 0.0, 2.0, 5.0, 12.0, 15.0, 40.0]),
                rating=rng.choice([None, 0.0, 3.0, 4.5, 4.5, 5.0, 4.333333333333333, rng.uniform(1, 5)]),
            )
            geoindex.put(pipe, worker, [SKILL], [SKILL], offerable=rng.random() < 0.9)
        pipe.execute()
    for worker_id in rng.sample(range(1, count + 1), count // 4):
        for _ in range(rng.randint(1, 2)):
            geoindex.count_job(connection, worker_id, TODAY)


def near(rng: random.Random, latitude: float, longitude: float, *, km: float) -> tuple[float, float]:
    north, east = rng.uniform(-km, km), rng.uniform(-km, km)
    return latitude + north / 111.32, longitude + east / (111.32 * math.cos(math.radians(latitude)))


def test_a_redis_that_lost_its_scripts_is_given_the_ranking_again(own_redis: RedisServer) -> None:
    rankings = []
    for restarted in (False, True):
        if restarted:
            own_redis.kill()  # without persistence: the index and the scripts are gone
            own_redis.start()
        connection = redis.Redis.from_url(own_redis.url)
        assert connection.script_exists(geoindex.RANKED_NEARBY_SHA) == [False]
        place_workers(connection, random.Random(3), 60)
        rankings.append(geoindex.ranked(connection, SKILL, *LUCKNOW, 20.0, TODAY, default_radius_km=10.0))
        connection.script_flush()  # a dispatch batch's searches, in one pipeline, find the script gone too
        search = geoindex.Search(SKILL, *LUCKNOW, 20.0)
        assert geoindex.ranked_many(connection, [search], TODAY, default_radius_km=10.0) == [rankings[-1]]
        connection.close()

    assert rankings[0]
    assert rankings[0] == rankings[1]
