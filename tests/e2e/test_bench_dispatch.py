"""`sewamitra bench dispatch` at toy sizes on the real PostgreSQL, Redis and RQ: it prints every
figure, loses no request, leaves a Redis database in use alone, and its GEO index picks the same
nearest worker its SQL baselines do (PostGIS's KNN search, and the haversine scan it falls back to).
Timings are printed, never asserted."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry

from core.exceptions import SewamitraError
from core.geo import distance_km
from core.settings import Settings
from devtools.bench import dispatch as bench
from devtools.bench import knn, stats
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import enqueue, geoindex
from storage.db import create_engine
from tests.factories import ROOT

# Starts a real RQ worker process; one worker of a split run (pytest-xdist) makes the module's one run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bench_dispatch")]

REQUESTS = 50
# Counts that a toy run may well leave at nought; every other figure is a time, a rate or a ratio.
MAY_BE_ZERO = {"e2e_escalated", "e2e_again", "e2e_lost", "e2e_failed_jobs", "e2e_parsed_anew"}


@pytest.fixture(scope="module")
def run(postgres_server_url: str, redis_server_url: str) -> tuple[str, dict[str, float]]:
    """One toy run of the whole benchmark, shared by the tests that read what it printed."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()  # the test suite's own Redis database
    client.close()
    out = io.StringIO()
    figures = bench.main(
        workers=2_000,
        requests=REQUESTS,
        matches=100,
        processes=1,
        seed=155330,
        postgres_url=postgres_server_url,
        redis_url=redis_server_url,
        out=out,
        config=ROOT / "config.yaml",
        sends=100,
    )
    return out.getvalue(), figures


def test_the_report_prints_every_figure_with_the_machine_and_the_targets(run: tuple[str, dict[str, float]]) -> None:
    report, figures = run

    for key, (_phase, label, _unit) in bench.FIGURES.items():
        assert key in figures, key
        assert label in report, label
    for machine in ("CPUs (nproc): ", "Python: ", "PostgreSQL: ", "Redis: ", "SQL baseline: "):
        assert machine in report
    assert "< 5 ms: " in report
    assert "| <= 1: " in report  # the index's p99 against the SQL baseline's
    assert ">= 300/s: " in report
    assert ">= 200/s: " in report
    assert "| = 0: met" in report  # no request left unoffered and unescalated


def test_the_report_says_which_sql_baseline_it_measured(
    run: tuple[str, dict[str, float]], postgres_server_url: str
) -> None:
    report, _ = run
    engine = sa.create_engine(postgres_server_url)
    postgis = knn.postgis_version(engine)
    engine.dispose()

    if postgis is None:
        assert "- SQL baseline: haversine scan, no spatial index (PostGIS is not installed" in report
    else:
        assert f"- SQL baseline: PostGIS {postgis} KNN" in report
    assert "workers=2000, requests=50, matches=100, processes=1, sends=100, seed=155330" in report


def test_every_time_rate_and_ratio_is_measured(run: tuple[str, dict[str, float]]) -> None:
    _, figures = run

    measured = {key: value for key, value in figures.items() if key not in MAY_BE_ZERO}
    assert all(value > 0 for value in measured.values()), measured


def test_every_request_ends_offered_or_escalated_and_every_offer_is_delivered(
    run: tuple[str, dict[str, float]],
) -> None:
    _, figures = run

    assert figures["e2e_offered"] + figures["e2e_escalated"] == REQUESTS
    assert figures["e2e_again"] == 0  # one process: no other round holds a worker
    assert figures["e2e_lost"] == 0
    assert figures["e2e_failed_jobs"] == 0
    assert figures["e2e_parsed_anew"] == 0  # a batch's statements are texts psycopg keeps parsed
    assert figures["e2e_delivered"] == figures["e2e_offered"]
    assert figures["sql_offered"] == figures["e2e_offered"]  # the baseline finds someone for the same requests


def test_the_run_agrees_with_sql_on_every_point(run: tuple[str, dict[str, float]]) -> None:
    _, figures = run

    assert figures["match_agreement"] == 1.0


@pytest.fixture(params=["scan", "postgis"])
def lucknow(
    request: pytest.FixtureRequest, migrated_postgres_url: str, redis_client: redis.Redis, settings: Settings
) -> Iterator[bench.Bench]:
    """1,500 workers around Lucknow's PIN codes, in a migrated database and the GEO index; the SQL
    baseline the haversine scan, or PostGIS's KNN search where the server has PostGIS."""
    engine = create_engine(migrated_postgres_url)
    spots = tuple(spot for spot in bench.spots("UTTAR PRADESH") if spot.district == "LUCKNOW")
    world = bench.Bench(settings, engine, redis_client, random.Random(7), spots, io.StringIO())
    bench.add_workers(world, 1_500)
    bench.rebuild_index(world)
    if request.param == "postgis":
        if knn.postgis_version(engine) is None:
            pytest.skip(f"PostGIS is not installed on this PostgreSQL server ({knn.INSTALL})")
        bench.prepare_baseline(world)
        assert world.baseline.query is knn.KNN
    yield world
    engine.dispose()


def test_the_index_and_sql_choose_the_same_nearest_worker(lucknow: bench.Bench) -> None:
    rules = lucknow.rules
    radius = geoindex.search_radius(lucknow.redis, rules.default_radius_km)
    far_away = [bench.Point(25.45, 78.57, skill) for skill in lucknow.skills[:3]]  # Jhansi: nobody there
    today = datetime.now(UTC).date()
    found = 0
    with lucknow.engine.connect() as connection:
        for point in bench.request_points(lucknow, 200) + far_away:
            everyone = bench.by_index(lucknow, point, radius, today, 0)  # the whole ranking: the nearest is in it
            ours = bench.nearest_by_index(everyone, rules.default_radius_km)
            theirs = bench.nearest_by_sql(bench.by_sql(lucknow, connection, point, radius))

            assert (ours is None) == (theirs is None), point
            if ours is not None and theirs is not None:
                found += 1
                if ours.worker_id != theirs.worker_id:  # only a tie: both as near, where the database has them
                    near = [home_distance(connection, point, w) for w in (ours.worker_id, theirs.worker_id)]
                    assert abs(near[0] - near[1]) < bench.TIE_KM, (point, ours, theirs)
    assert found > 150  # the check had workers to compare, not only empty answers


def test_a_round_sent_back_for_later_runs_before_the_requests_are_counted(
    migrated_postgres_url: str, redis_client: redis.Redis, redis_server_url: str
) -> None:
    """The timed burst's workers leave when the queue is empty; a request whose workers in range the other
    process's round held waits in the scheduled jobs, and would be counted as left."""
    engine = create_engine(migrated_postgres_url)
    spots = tuple(spot for spot in bench.spots("UTTAR PRADESH") if spot.district == "LUCKNOW")
    with TwilioSandbox(bench.ACCOUNT_SID, bench.AUTH_TOKEN) as sandbox:
        settings = bench.bench_settings(ROOT / "config.yaml", migrated_postgres_url, redis_server_url, sandbox.base_url)
        world = bench.Bench(settings, engine, redis_client, random.Random(7), spots, io.StringIO())
        bench.add_workers(world, 300)
        bench.rebuild_index(world)
        [request_id] = bench.insert_requests(world, 1)
        enqueue.dispatch_again(redis_client, request_id, timedelta(hours=1))
        enqueue.offer_resent(redis_client, 999_999, 2, timedelta(hours=1))  # not a round

        assert bench.rounds_sent_back(world, processes=1) == 1

    with engine.connect() as connection:
        status = connection.execute(sa.text("SELECT status FROM service_request WHERE id = :id"), {"id": request_id})
        assert status.scalar_one() == "offered"
    engine.dispose()
    later = set(ScheduledJobRegistry("dispatch", connection=redis_client).get_job_ids())
    assert f"dispatch-{request_id}-again" not in later
    assert "offer-999999-2" in later  # another offer's retry still waits for its time


def home_distance(connection: sa.Connection, point: bench.Point, worker_id: int) -> float:
    latitude, longitude = connection.execute(
        sa.text("SELECT latitude, longitude FROM worker WHERE id = :id"), {"id": worker_id}
    ).one()
    return distance_km(point.latitude, point.longitude, latitude, longitude)


def test_a_redis_database_holding_other_keys_is_left_alone(
    redis_client: redis.Redis, postgres_server_url: str, redis_server_url: str
) -> None:
    redis_client.set("someone:else", "keep me")
    databases = bench_databases(postgres_server_url)

    with pytest.raises(SewamitraError, match="holds keys the benchmark did not make"):
        bench.main(
            workers=1,
            requests=1,
            matches=1,
            processes=1,
            seed=1,
            postgres_url=postgres_server_url,
            redis_url=redis_server_url,
            out=io.StringIO(),
            config=ROOT / "config.yaml",
        )

    assert redis_client.get("someone:else") == b"keep me"
    assert bench_databases(postgres_server_url) <= databases  # its fresh database was dropped on the way out


def bench_databases(postgres_server_url: str) -> set[str]:
    engine = sa.create_engine(postgres_server_url)
    with engine.connect() as connection:
        names = connection.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'sewamitra_bench_%'"))
        found = set(names.scalars())
    engine.dispose()
    return found


def test_percentiles_are_measured_values_by_nearest_rank() -> None:
    ordered = list(range(1, 101))

    assert [stats.percentile(ordered, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert stats.percentile([7], 99) == 7
