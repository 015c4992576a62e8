"""`sewamitra bench dispatch`: how fast the helpline finds a worker and offers the job, measured on
the real services (PostgreSQL, Redis, RQ and the Twilio sandbox), each figure beside an SQL baseline
run in the same process on the same data: for matching, PostGIS's KNN search where the server has
PostGIS (else a haversine scan; `knn` says which), timed point by point in turn with the index.

It builds a world of its own and takes it away afterwards: a fresh PostgreSQL database, a Redis
database emptied before and after, and the sandbox in place of Twilio. It prints measurements and
never judges them: a missed target is a figure, not an error.
"""

from __future__ import annotations

import math
import multiprocessing
import queue as queue_module
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue as ProcessQueue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, TextIO

import redis
import sqlalchemy as sa
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry
from sqlmodel import Session, col

from core import numbers, pincodes
from core.exceptions import SewamitraError
from core.settings import Dispatch, Settings, default_config_path, load_settings
from devtools.bench import knn, roundtrips, scratch, sending, stats
from devtools.bench.output import describe_machine, heading, say, table
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, enqueue, geoindex, offers, queues
from dispatch import jobs as _jobs  # noqa: F401 (loaded before a worker's heap settles, as `sewamitra worker` does)
from dispatch.matching import Candidate, rank
from sewamitra.process import settle
from storage import redisdb
from storage.db import create_engine, upgrade
from storage.models import (
    AuditEvent,
    Channel,
    Offer,
    OfferChannel,
    OfferStatus,
    Origin,
    RequestStatus,
    ServiceRequest,
    SmsLog,
    VerificationStatus,
    Worker,
    WorkerSkill,
)
from telephony.twilio.rest import TwilioTelephony

TARGET_MATCH_P99_MS = 5.0  # from the issue: finding the worker must not be what a caller waits on
TARGET_OFFERED_PER_S = 300.0  # issue 21: a district's morning rush, all at once, offers made
TARGET_DELIVERED_PER_S = 200.0  # issue 21: ... and in the sandbox's hands (the queue drained)
JITTER_KM = 3.0  # workers and match points scatter this far around their PIN code's position
RADII_KM = (5.0, 8.0, 10.0, 12.0, 15.0)  # the service radii a fifth of workers set for themselves
TIE_KM = 0.005  # two workers this close in distance are equally near (the index keeps 52-bit geohashes)
WARM_UP = 10  # untimed first searches: connections, prepared statements, caches
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 3600.0
# A scheduled job that runs a request's dispatch again; a round sent back may send its request back again.
AGAIN_JOB = re.compile(re.escape(enqueue.DISPATCH_AGAIN_JOB_ID).replace(re.escape("{}"), r"\d+"))
MAX_ROUNDS_SENT_BACK = 5
MAX_REQUESTS = 100_000  # request numbers have six random digits: leave most of them free
ACCOUNT_SID = "AC" + "b3" * 16  # the sandbox's own credentials: never a real account
AUTH_TOKEN = "bench-" + "0" * 26


@dataclass(frozen=True)
class Spot:
    """A PIN code with a position on the map: where workers live and citizens call from."""

    pincode: str
    district: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Point:
    """Where a citizen needs someone, and for what."""

    latitude: float
    longitude: float
    skill: str


@dataclass(frozen=True)
class Found:
    """The nearest eligible worker one method found for a point, and how far that worker serves."""

    worker_id: int
    distance_km: float
    reach_km: float


@dataclass
class Bench:
    """What every phase of one run shares: settings, connections, one random stream, the map."""

    settings: Settings
    engine: sa.Engine
    redis: redis.Redis
    rng: random.Random
    spots: tuple[Spot, ...]
    out: TextIO
    baseline: knn.Baseline = knn.SCAN_BASELINE

    @property
    def rules(self) -> Dispatch:
        return self.settings.dispatch

    @property
    def skills(self) -> tuple[str, ...]:
        return tuple(sorted(self.settings.service_codes))

    def say(self, line: str) -> None:
        say(self.out, line)


# Every figure main() returns: phase, label, unit. The report prints them in this order.
FIGURES: dict[str, tuple[str, str, str]] = {
    "workers_insert_s": ("set-up", "workers bulk-inserted (with their skills)", "s"),
    "workers_per_s": ("set-up", "insert rate", "workers/s"),
    "rebuild_s": ("set-up", "GEO index rebuilt (geoindex.rebuild)", "s"),
    "indexed_workers": ("set-up", "workers in the index (offerable)", "workers"),
    "baseline_build_s": ("set-up", "SQL baseline's table and index built (PostGIS only)", "s"),
    "match_p50_ms": ("matching", "index p50 (geoindex.ranked: search and ranking in Redis, as dispatch)", "ms"),
    "match_p90_ms": ("matching", "index p90", "ms"),
    "match_p99_ms": ("matching", "index p99", "ms"),
    "match_max_ms": ("matching", "index max", "ms"),
    "python_match_p50_ms": ("matching", "index ranked in Python p50 (geoindex.nearby + matching.rank)", "ms"),
    "python_match_p99_ms": ("matching", "index ranked in Python p99", "ms"),
    "sql_match_p50_ms": ("matching", "SQL baseline p50 (nearest-neighbour query)", "ms"),
    "sql_match_p90_ms": ("matching", "SQL baseline p90", "ms"),
    "sql_match_p99_ms": ("matching", "SQL baseline p99", "ms"),
    "sql_match_max_ms": ("matching", "SQL baseline max", "ms"),
    "match_speedup": ("matching", "speed-up (SQL p50 / index p50)", "x"),
    "match_p99_vs_sql": ("matching", "index p99 / SQL baseline p99", "ratio"),
    "match_p99_vs_python": ("matching", "index p99 / index ranked in Python p99", "ratio"),
    "match_found": ("matching", "points with an eligible worker in range", "points"),
    "match_agreement": ("matching", "points where index and SQL chose the same nearest worker", "share"),
    "e2e_offered": ("end to end", "requests offered (status in the database)", "requests"),
    "e2e_escalated": ("end to end", "requests escalated (no eligible worker)", "requests"),
    "e2e_again": (
        "end to end",
        "requests sent back for another round (the workers in range held by the other process's round)",
        "requests",
    ),
    "e2e_lost": ("end to end", "requests left in any other status, once those rounds have run", "requests"),
    "e2e_failed_jobs": ("end to end", "failed RQ jobs", "jobs"),
    "e2e_dispatch_s": ("end to end", "first enqueue -> last offer made (its row's created_at)", "s"),
    "e2e_created_per_s": ("end to end", "requests offered per second (offers created)", "requests/s"),
    "e2e_drain_s": ("end to end", "first enqueue -> queue drained (offers delivered)", "s"),
    "e2e_offered_per_s": ("end to end", "requests offered per second (queue drained)", "requests/s"),
    "e2e_delivered": ("end to end", "offers delivered to the Twilio sandbox (SMS + calls)", "offers"),
    "e2e_delivered_per_s": ("end to end", "delivery rate (offers delivered / time to drain)", "offers/s"),
    "e2e_worker_cpu_ms": ("end to end", "RQ worker processes' CPU per request (user + system, from go to done)", "ms"),
    "e2e_postgres_trips": ("end to end", "RQ worker processes' PostgreSQL round trips per request", "round trips"),
    "e2e_redis_trips": ("end to end", "RQ worker processes' Redis round trips per request (RQ's too)", "round trips"),
    "e2e_parsed_anew": (
        "end to end",
        "RQ worker processes' statements psycopg parses anew (over 4 KB or 50 parameters) per request",
        "statements",
    ),
    "sql_offered": ("SQL baseline", "requests offered by a plain loop (one process, no Redis/RQ)", "requests"),
    "sql_dispatch_s": ("SQL baseline", "loop wall time", "s"),
    "sql_offered_per_s": ("SQL baseline", "requests offered per second", "requests/s"),
    "e2e_speedup_created": ("SQL baseline", "ratio, offers created (ours / baseline)", "x"),
    "e2e_speedup_drained": ("SQL baseline", "ratio, queue drained (ours / baseline)", "x"),
    "send_twilio_ours_ms": ("sending", "one SMS's send on Twilio, the helpline's client (telephony.http)", "ms"),
    "send_twilio_sdk_ms": ("sending", "the same with the SDK's own client (requests)", "ms"),
    "send_twilio_ratio": ("sending", "ratio, ours / the SDK's", "ratio"),
    "send_plivo_ours_ms": ("sending", "one SMS's send on Plivo, the helpline's client (telephony.http)", "ms"),
    "send_plivo_sdk_ms": ("sending", "the same with the SDK's own client (requests)", "ms"),
    "send_plivo_ratio": ("sending", "ratio, ours / the SDK's", "ratio"),
    "total_s": ("run", "whole benchmark wall time", "s"),
}
TARGETS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "match_p99_ms": (f"< {TARGET_MATCH_P99_MS:g} ms", lambda value: value < TARGET_MATCH_P99_MS),
    "match_p99_vs_sql": ("<= 1", lambda value: value <= 1.0),
    "e2e_created_per_s": (f">= {TARGET_OFFERED_PER_S:g}/s", lambda value: value >= TARGET_OFFERED_PER_S),
    "e2e_offered_per_s": (f">= {TARGET_DELIVERED_PER_S:g}/s", lambda value: value >= TARGET_DELIVERED_PER_S),
    "e2e_lost": ("= 0", lambda value: value == 0),
}


def main(
    *,
    workers: int,
    requests: int,
    matches: int,
    processes: int,
    seed: int,
    postgres_url: str,
    redis_url: str,
    out: TextIO,
    config: Path | None = None,
    sends: int = 1_000,
) -> dict[str, float]:
    """Run every phase on a world of its own, print the report, and return the figures."""
    # Worker processes are spawned, and a spawned process imports its parent's main script again.
    if multiprocessing.parent_process() is not None:
        raise SewamitraError(
            "the dispatch benchmark was started again inside one of its own worker processes: "
            "call main() under `if __name__ == '__main__':`"
        )
    _check_sizes(workers=workers, requests=requests, matches=matches, processes=processes, sends=sends)
    started = time.perf_counter()
    with (
        scratch.fresh_database(postgres_url) as database_url,
        scratch.claimed_redis(redis_url) as connection,
        TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN) as sandbox,
    ):
        settings = bench_settings(config or default_config_path(), database_url, redis_url, sandbox.base_url)
        engine = create_engine(database_url)
        try:
            upgrade(engine)
            bench = Bench(settings, engine, connection, random.Random(seed), spots(settings.service_area.state), out)
            figures, notes = _run(
                bench, sandbox, workers=workers, requests=requests, matches=matches, processes=processes, sends=sends
            )
            machine = describe_machine(engine, connection) | {"SQL baseline": bench.baseline.name}
        finally:
            engine.dispose()
    figures["total_s"] = time.perf_counter() - started
    parameters = {
        "workers": workers,
        "requests": requests,
        "matches": matches,
        "processes": processes,
        "sends": sends,
        "seed": seed,
        **settings.dispatch.model_dump(),
    }
    out.write(report(machine, parameters, figures, notes))
    return figures


def _run(
    bench: Bench, sandbox: TwilioSandbox, *, workers: int, requests: int, matches: int, processes: int, sends: int
) -> tuple[dict[str, float], list[str]]:
    figures = set_up(bench, workers)
    figures["baseline_build_s"] = prepare_baseline(bench)
    matching, notes = measure_matching(bench, matches)
    offered, more_notes, request_ids = measure_offers(bench, sandbox, requests, processes)
    baseline = measure_sql_offers(bench, request_ids)
    figures |= matching | offered | baseline | measure_sends(bench, sends)
    figures["e2e_speedup_created"] = stats.ratio(figures["e2e_created_per_s"], figures["sql_offered_per_s"])
    figures["e2e_speedup_drained"] = stats.ratio(figures["e2e_offered_per_s"], figures["sql_offered_per_s"])
    return figures, notes + more_notes


def measure_sends(bench: Bench, count: int) -> dict[str, float]:
    """One SMS's send, the sending thread's CPU, with the helpline's client and with the SDK's own, on
    each platform (`devtools.bench.sending`)."""
    bench.say(f"sending {count:,} SMS with each client, on each platform")
    figures = {}
    for platform, cost in sending.measure(count).items():
        figures[f"send_{platform}_ours_ms"] = cost.ours_ms
        figures[f"send_{platform}_sdk_ms"] = cost.sdk_ms
        figures[f"send_{platform}_ratio"] = cost.ratio
    return figures


def _check_sizes(**sizes: int) -> None:
    for name, size in sizes.items():
        if size < 1:
            raise SewamitraError(f"--{name} must be at least 1, not {size}")
    if sizes["requests"] > MAX_REQUESTS:
        raise SewamitraError(f"--requests may be at most {MAX_REQUESTS:,}: request numbers would run out")


# -- the world ------------------------------------------------------------------------------------


def bench_settings(config: Path, database_url: str, redis_url: str, twilio_base_url: str) -> Settings:
    """The helpline's own settings (config.yaml and SEWAMITRA_* overrides), pointed at the bench's world."""
    environ = scratch.helpline_environ(
        database_url, redis_url, twilio_base_url=twilio_base_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
    )
    return load_settings(config, environ)


def spots(state: str) -> tuple[Spot, ...]:
    """Every PIN code of the service area that India Post places on the map."""
    found = []
    for pin in pincodes.pincodes(state):
        place = pincodes.lookup(pin)
        if place and place.latitude is not None and place.longitude is not None:
            found.append(Spot(place.pincode, place.district, place.latitude, place.longitude))
    if not found:
        raise SewamitraError(f"the India Post directory has no PIN codes on the map for {state!r}")
    return tuple(found)


def jitter(rng: random.Random, latitude: float, longitude: float, km: float) -> tuple[float, float]:
    """A point drawn evenly from the disc of `km` around the given one."""
    distance, bearing = km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    north, east = distance * math.cos(bearing), distance * math.sin(bearing)
    return latitude + north / 111.32, longitude + east / (111.32 * math.cos(math.radians(latitude)))


# -- 1. set-up ------------------------------------------------------------------------------------


def set_up(bench: Bench, count: int) -> dict[str, float]:
    """Register `count` workers and build the index: the two costs of a restart."""
    bench.say(f"inserting {count:,} workers")
    inserted = add_workers(bench, count)
    bench.say("rebuilding the GEO index")
    rebuilt, indexed = rebuild_index(bench)
    return {
        "workers_insert_s": inserted,
        "workers_per_s": count / inserted,
        "rebuild_s": rebuilt,
        "indexed_workers": float(indexed),
    }


def add_workers(bench: Bench, count: int) -> float:
    """Workers spread over the service area's PIN codes, inserted in bulk; returns the seconds taken."""
    now = datetime.now(UTC)
    rows, skills = [], []
    for worker_id in range(1, count + 1):
        row, codes = worker_row(bench.rng, worker_id, bench.rng.choice(bench.spots), bench.skills, now)
        rows.append(row)
        skills += [{"worker_id": worker_id, "service_code": code} for code in codes]
    started = time.perf_counter()
    with bench.engine.begin() as connection:
        connection.execute(sa.insert(Worker), rows)
        connection.execute(sa.insert(WorkerSkill), skills)
        _advance_ids(connection, "worker", count)
    with bench.engine.connect() as connection:  # as autovacuum would soon: a live table has statistics
        connection.execute(sa.text("ANALYZE worker, worker_skill"))
        connection.commit()
    return time.perf_counter() - started


def worker_row(
    rng: random.Random, worker_id: int, spot: Spot, skills: Sequence[str], now: datetime
) -> tuple[dict[str, Any], list[str]]:
    """One worker near `spot`: four in five police-verified and available, one or two skills."""
    latitude, longitude = jitter(rng, spot.latitude, spot.longitude, JITTER_KM)
    verification, available = _standing(rng)
    row = {
        "id": worker_id,
        "name": f"Bench Worker {worker_id}",
        "phone": f"+91{7_000_000_000 + worker_id}",
        "language": "en" if rng.random() < 0.08 else "hi",
        "voice_preferred": rng.random() < 0.2,
        "pincode": spot.pincode,
        "district": spot.district,
        "latitude": latitude,
        "longitude": longitude,
        "service_radius_km": rng.choice(RADII_KM) if rng.random() < 0.2 else None,
        "police_verification": verification,
        "available": available,
        "active": True,
        "origin": Origin.LOCAL,
        "rating": None if rng.random() < 0.15 else round(rng.uniform(3.0, 5.0), 1),
        "rating_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    return row, rng.sample(list(skills), 2 if rng.random() < 0.35 else 1)


def _standing(rng: random.Random) -> tuple[VerificationStatus, bool]:
    draw = rng.random()
    if draw < 0.80:
        return VerificationStatus.VERIFIED, True
    if draw < 0.88:
        return VerificationStatus.VERIFIED, False
    if draw < 0.96:
        return VerificationStatus.PENDING, True
    return VerificationStatus.REJECTED, False


def _advance_ids(connection: sa.Connection, table: str, last: int) -> None:
    """Rows went in with their ids given: the sequence must not hand those ids out again."""
    connection.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :last)"), {"last": last})


def rebuild_index(bench: Bench) -> tuple[float, int]:
    """geoindex.rebuild as the helpline runs it at start; returns seconds and workers indexed."""
    started = time.perf_counter()
    with Session(bench.engine) as session:
        indexed = geoindex.rebuild(
            bench.redis,
            session,
            all_skills=bench.settings.service_codes,
            allow_parallel_jobs=bench.rules.allow_parallel_jobs,
        )
    return time.perf_counter() - started, indexed


def prepare_baseline(bench: Bench) -> float:
    """The SQL baseline over the workers just indexed: PostGIS's table and index, where it is installed."""
    bench.say("preparing the SQL baseline")
    started = time.perf_counter()
    bench.baseline = knn.prepare(bench.engine, bench.rules)
    bench.say(f"SQL baseline: {bench.baseline.name}")
    return time.perf_counter() - started


# -- 2. matching ----------------------------------------------------------------------------------


def measure_matching(bench: Bench, count: int) -> tuple[dict[str, float], list[str]]:
    """Latency of finding the worker for `count` points, by the index (ranking in Redis, as dispatch
    does, and in Python, as it did) and by SQL, each point by each in turn; and whether they agree."""
    bench.say(f"matching {count:,} points by the index and by SQL")
    points = request_points(bench, count)
    radius = geoindex.search_radius(bench.redis, bench.rules.default_radius_km)
    today = datetime.now(UTC).date()
    wanted = offers.first_round_wanted(bench.rules)
    with bench.engine.connect() as connection:
        (index_ns, ranked), (python_ns, by_python), (sql_ns, rows) = _timed_in_turn(
            [
                lambda point: by_index(bench, point, radius, today, wanted),
                lambda point: by_index_in_python(bench, point, radius, today, wanted),
                lambda point: by_sql(bench, connection, point, radius),
            ],
            points,
        )
    ours = [nearest_by_index(found, bench.rules.default_radius_km) for found in ranked]
    theirs = [nearest_by_sql(found) for found in rows]
    figures = _latencies("match", index_ns) | _latencies("python_match", python_ns) | _latencies("sql_match", sql_ns)
    figures["match_speedup"] = stats.ratio(figures["sql_match_p50_ms"], figures["match_p50_ms"])
    figures["match_p99_vs_sql"] = stats.ratio(figures["match_p99_ms"], figures["sql_match_p99_ms"])
    figures["match_p99_vs_python"] = stats.ratio(figures["match_p99_ms"], figures["python_match_p99_ms"])
    figures["match_found"] = float(sum(found is not None for found in theirs))
    agree = [same_nearest(a, b) for a, b in zip(ours, theirs, strict=True)]
    figures["match_agreement"] = sum(agree) / len(agree)
    notes = [
        f"index and SQL disagree at {point}: index {a}, SQL {b}"
        for point, a, b, ok in zip(points, ours, theirs, agree, strict=True)
        if not ok
    ]
    notes += [
        f"the index ranked in Redis and in Python differ at {point}" for point in _differ(points, ranked, by_python)
    ]
    return figures, notes[:5]


def _differ(
    points: Sequence[Point], ranked: Sequence[list[Candidate]], by_python: Sequence[list[Candidate]]
) -> list[Point]:
    return [point for point, ours, theirs in zip(points, ranked, by_python, strict=True) if ours != theirs]


def request_points(bench: Bench, count: int) -> list[Point]:
    """Where citizens call from: around real PIN codes, each needing one skill of the catalogue."""
    points = []
    for _ in range(count):
        spot = bench.rng.choice(bench.spots)
        latitude, longitude = jitter(bench.rng, spot.latitude, spot.longitude, JITTER_KM)
        points.append(Point(latitude, longitude, bench.rng.choice(bench.skills)))
    return points


def by_index(bench: Bench, point: Point, radius_km: float, today: date, wanted: int) -> list[Candidate]:
    """What a dispatch job does to choose: the GEO search and the ranking, in Redis, in one round trip;
    the first `wanted` of the ranking come back (0: all)."""
    return geoindex.ranked(
        bench.redis,
        point.skill,
        point.latitude,
        point.longitude,
        radius_km,
        today,
        default_radius_km=bench.rules.default_radius_km,
        wanted=wanted,
    )


def by_index_in_python(bench: Bench, point: Point, radius_km: float, today: date, wanted: int) -> list[Candidate]:
    """What a dispatch job did before: the GEO search and the reads, then the ranking in Python."""
    found = geoindex.nearby(bench.redis, point.skill, point.latitude, point.longitude, radius_km, today)
    return rank(found, default_radius_km=bench.rules.default_radius_km)[: wanted or None]


def by_sql(bench: Bench, connection: sa.Connection, point: Point, radius_km: float) -> list[sa.Row[Any]]:
    """The same choice by the SQL baseline: the nearest eligible workers of the skill who serve the spot."""
    return bench.baseline.nearest(connection, point.latitude, point.longitude, point.skill, bench.rules, radius_km)


def nearest_by_index(ranked: Sequence[Candidate], default_radius_km: float) -> Found | None:
    """The nearest of the ranked (the ranking itself may prefer a better-rated one within 100 m)."""
    if not ranked:
        return None
    best = min(ranked, key=lambda candidate: (candidate.distance_km, candidate.worker_id))
    return Found(best.worker_id, best.distance_km, best.radius_km or default_radius_km)


def nearest_by_sql(rows: Sequence[sa.Row[Any]]) -> Found | None:
    if not rows:
        return None
    return Found(int(rows[0].id), float(rows[0].km), float(rows[0].reach))


def same_nearest(index: Found | None, sql: Found | None) -> bool:
    """The same worker, or one just as near; or none, unless the one found stands at its radius's edge."""
    if index is None or sql is None:
        only = index or sql
        return only is None or only.reach_km - only.distance_km <= TIE_KM
    return index.worker_id == sql.worker_id or abs(index.distance_km - sql.distance_km) <= TIE_KM


def _timed_in_turn(
    calls: Sequence[Callable[[Point], Any]], points: Sequence[Point]
) -> list[tuple[list[int], list[Any]]]:
    """Each call on each point, the calls taking turns to go first: on a busy machine, whatever slows
    one point down falls on every call alike. Returns each call's durations (ns) and results."""
    for point in points[:WARM_UP]:
        for call in calls:
            call(point)
    timed: list[tuple[list[int], list[Any]]] = [([], []) for _ in calls]
    for n, point in enumerate(points):
        for k in range(len(calls)):
            which = (n + k) % len(calls)
            started = time.perf_counter_ns()
            result = calls[which](point)
            timed[which][0].append(time.perf_counter_ns() - started)
            timed[which][1].append(result)
    return timed


def _latencies(name: str, durations_ns: Sequence[int]) -> dict[str, float]:
    return {f"{name}_{key}_ms": value / 1e6 for key, value in stats.spread(durations_ns, (50, 90, 99)).items()}


# -- 3. end to end --------------------------------------------------------------------------------


def measure_offers(
    bench: Bench, sandbox: TwilioSandbox, count: int, processes: int
) -> tuple[dict[str, float], list[str], list[int]]:
    """`count` new requests through the real dispatch queue and `processes` RQ workers."""
    request_ids = insert_requests(bench, count)
    bench.say(f"dispatching {count:,} requests through RQ with {processes} worker process(es)")
    started, worker_cpu_s, trips = run_workers(bench, request_ids, processes)
    statuses = _statuses(bench.engine)
    dispatched, drained = _finish_times(bench, started)
    delivered = len(sandbox.messages) + len(sandbox.calls)
    again = rounds_sent_back(bench, processes)
    settled = _statuses(bench.engine)
    failed = FailedJobRegistry(queues.QueueName.DISPATCH.value, connection=bench.redis)
    offered = statuses[RequestStatus.OFFERED.value]
    figures = {
        "e2e_offered": float(offered),
        "e2e_escalated": float(statuses[RequestStatus.ESCALATED.value]),
        "e2e_again": float(again),
        "e2e_lost": float(count - settled[RequestStatus.OFFERED.value] - settled[RequestStatus.ESCALATED.value]),
        "e2e_failed_jobs": float(failed.count),
        "e2e_dispatch_s": dispatched,
        "e2e_drain_s": drained,
        "e2e_created_per_s": stats.ratio(offered, dispatched),
        "e2e_offered_per_s": stats.ratio(offered, drained),
        "e2e_delivered": float(delivered),
        "e2e_delivered_per_s": stats.ratio(delivered, drained),
        "e2e_worker_cpu_ms": stats.ratio(worker_cpu_s * 1000, count),
        "e2e_postgres_trips": stats.ratio(trips.postgres, count),
        "e2e_redis_trips": stats.ratio(trips.redis, count),
        "e2e_parsed_anew": stats.ratio(trips.parsed_anew, count),
    }
    return figures, _failures(bench, failed), request_ids


def rounds_sent_back(bench: Bench, processes: int) -> int:
    """Run, untimed and without their wait, the rounds the timed burst sent back for later: a request
    whose workers in range the other process's round held comes back after `jobs.DISPATCH_AGAIN_AFTER`
    (a scheduled job), when the burst's workers have already left. How many came back."""
    came_back = 0
    for _ in range(MAX_ROUNDS_SENT_BACK):
        scheduled = ScheduledJobRegistry(queues.QueueName.DISPATCH.value, connection=bench.redis)
        ids = [job_id for job_id in scheduled.get_job_ids() if AGAIN_JOB.fullmatch(job_id)]
        if not ids:
            break
        came_back += len(ids)
        bench.say(f"running {len(ids):,} round(s) sent back for later, now")
        dispatch = queues.queue(bench.redis, queues.QueueName.DISPATCH)
        for job in Job.fetch_many(ids, connection=bench.redis):
            if job is not None:
                scheduled.remove(job)
                dispatch.enqueue_job(job)
        run_workers(bench, [], processes)
    return came_back


def insert_requests(bench: Bench, count: int) -> list[int]:
    """New requests at real PIN codes, placed where the IVR places them: at the PIN code itself."""
    now = datetime.now(UTC)
    rows = []
    for request_id, number in enumerate(_request_numbers(bench.rng, count), start=1):
        spot = bench.rng.choice(bench.spots)
        rows.append(
            {
                "id": request_id,
                "number": number,
                "service_code": bench.rng.choice(bench.skills),
                "pincode": spot.pincode,
                "district": spot.district,
                "latitude": spot.latitude,
                "longitude": spot.longitude,
                "language": "hi",
                "channel": Channel.IVR,
                "status": RequestStatus.NEW,
                "created_at": now,
                "updated_at": now,
            }
        )
    with bench.engine.begin() as connection:
        connection.execute(sa.insert(ServiceRequest), rows)
        _advance_ids(connection, "service_request", count)
    return list(range(1, count + 1))


def _request_numbers(rng: random.Random, count: int) -> list[str]:
    """Distinct request numbers with a valid check digit, as core.numbers makes them."""
    made: dict[str, None] = {}
    while len(made) < count:
        body = str(rng.randrange(100_000, 1_000_000))
        made[body + numbers.check_digit(body)] = None
    return list(made)


def run_workers(
    bench: Bench, request_ids: Sequence[int], processes: int
) -> tuple[datetime, float, roundtrips.RoundTrips]:
    """Enqueue every dispatch job only once all workers are connected; returns when the clock started,
    and the CPU seconds the worker processes spent from then until their queues were empty (each by its
    own clock: on a shared machine, what the work costs, apart from how long it waited for a core),
    and their round trips to PostgreSQL and Redis (a count: the same however busy the machine)."""
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no connection crosses a fork
    ready, go, spent = spawn.Queue(), spawn.Event(), spawn.Queue()
    workers = [
        spawn.Process(
            target=_serve, args=(bench.settings, ready, go, spent, f"bench-{uuid.uuid4().hex[:8]}-{n}"), daemon=True
        )
        for n in range(processes)
    ]
    try:
        for worker in workers:
            worker.start()
        _await_ready(ready, workers)
        started = datetime.now(UTC)
        if not enqueue.dispatch_requests(bench.redis, request_ids):  # as the sweeper queues many at once
            raise SewamitraError("Redis refused the dispatch of the requests; see the error above")
        go.set()
        _join(workers)
        reports = [spent.get(timeout=READY_TIMEOUT_S) for _ in workers]
        trips = sum((report[1] for report in reports), roundtrips.RoundTrips())
        return started, sum(report[0] for report in reports), trips
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(5)


def _serve(
    settings: Settings,
    ready: ProcessQueue[str],
    go: Event,
    spent: ProcessQueue[tuple[float, roundtrips.RoundTrips]],
    name: str,
) -> None:
    """One RQ worker process as `sewamitra worker` runs it, connected before the clock starts; it
    reports the CPU seconds its burst took, and its round trips."""
    engine = create_engine(settings.sqlalchemy_url)
    with engine.connect():
        pass
    connection = redisdb.connect(settings)
    connection.ping()
    context.install(context.JobContext(settings, engine, connection, TwilioTelephony(settings)))
    settle()
    ready.put(name)
    go.wait()
    cpu = time.process_time()
    with roundtrips.counted() as trips:
        queues.worker(connection, name=name).work(burst=True, logging_level="WARNING")
    spent.put((time.process_time() - cpu, trips))


def _await_ready(ready: ProcessQueue[str], workers: Sequence[SpawnProcess]) -> None:
    deadline, waiting = time.monotonic() + READY_TIMEOUT_S, len(workers)
    while waiting:
        try:
            ready.get(timeout=0.2)
            waiting -= 1
        except queue_module.Empty:
            if any(worker.exitcode is not None for worker in workers) or time.monotonic() > deadline:
                raise SewamitraError("an RQ worker process did not start; see its error above") from None


def _join(workers: Sequence[SpawnProcess]) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.exitcode != 0:
            raise SewamitraError(f"RQ worker process {worker.name} ended with {worker.exitcode}")


def _statuses(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT status, count(*) FROM service_request GROUP BY status")).all()
    return Counter({str(status): int(n) for status, n in rows})


def _finish_times(bench: Bench, started: datetime) -> tuple[float, float]:
    """Seconds from the first enqueue to the last offer made (its row's time), and to the end of the
    last job the dispatch queue ran (the dispatch jobs send the offers they make)."""
    with bench.engine.connect() as connection:
        last_offer = connection.execute(sa.select(sa.func.max(col(Offer.created_at)))).scalar()
    name = queues.QueueName.DISPATCH.value
    ran = [
        *FinishedJobRegistry(name, connection=bench.redis).get_job_ids(),
        *FailedJobRegistry(name, connection=bench.redis).get_job_ids(),
    ]
    drained = _last_end(bench.redis, ran, started)
    offered = last_offer if last_offer is not None else started
    return (offered - started).total_seconds(), (drained - started).total_seconds()


def _last_end(connection: redis.Redis, job_ids: Sequence[str], default: datetime) -> datetime:
    jobs = Job.fetch_many(job_ids, connection=connection)
    return max((job.ended_at for job in jobs if job is not None and job.ended_at), default=default)


def _failures(bench: Bench, failed: FailedJobRegistry) -> list[str]:
    notes = []
    for job in Job.fetch_many(failed.get_job_ids()[:3], connection=bench.redis):
        result = job.latest_result() if job else None
        error = (result.exc_string or "").strip().splitlines()[-1:] if result else []
        notes.append(f"failed job {job.id if job else '?'}: {' '.join(error) or 'no error recorded'}")
    return notes


# -- 3b. the SQL baseline -------------------------------------------------------------------------


def measure_sql_offers(bench: Bench, request_ids: Sequence[int]) -> dict[str, float]:
    """The same requests, made new again, offered by one plain loop: SQL nearest worker, one Offer row."""
    bench.say(f"dispatching the same {len(request_ids):,} requests by a plain SQL loop")
    _make_new_again(bench.engine)
    radius = geoindex.search_radius(bench.redis, bench.rules.default_radius_km)
    started = time.perf_counter()
    with bench.engine.connect() as connection:
        for request_id in request_ids:
            with connection.begin():
                offer_by_sql(connection, bench.baseline, request_id, bench.rules, radius, datetime.now(UTC))
    elapsed = time.perf_counter() - started
    offered = _statuses(bench.engine)[RequestStatus.OFFERED.value]
    return {"sql_offered": float(offered), "sql_dispatch_s": elapsed, "sql_offered_per_s": offered / elapsed}


def _make_new_again(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for model in (Offer, AuditEvent, SmsLog):
            connection.execute(sa.delete(model))
        connection.execute(sa.update(ServiceRequest).values(status=RequestStatus.NEW))


def offer_by_sql(
    connection: sa.Connection, baseline: knn.Baseline, request_id: int, rules: Dispatch, search_km: float, now: datetime
) -> None:
    """Offer one request to its nearest eligible worker, or escalate it: no index, no queue, no audit."""
    spot = connection.execute(
        sa.text("SELECT latitude, longitude, service_code FROM service_request WHERE id = :id"), {"id": request_id}
    ).one()
    nearest = nearest_by_sql(baseline.nearest(connection, spot[0], spot[1], spot[2], rules, search_km))
    if nearest is not None:
        expires_at = now + timedelta(seconds=rules.offer_timeout)
        connection.execute(
            sa.insert(Offer).values(
                request_id=request_id,
                worker_id=nearest.worker_id,
                status=OfferStatus.PENDING,
                channel=OfferChannel.SMS,
                created_at=now,
                expires_at=expires_at,
            )
        )
    status = RequestStatus.OFFERED if nearest else RequestStatus.ESCALATED
    connection.execute(
        sa.update(ServiceRequest).where(col(ServiceRequest.id) == request_id).values(status=status, updated_at=now)
    )


# -- 4. the report --------------------------------------------------------------------------------


def report(machine: dict[str, str], parameters: dict[str, Any], figures: dict[str, float], notes: Sequence[str]) -> str:
    """The figures as a markdown table, with what they ran on and the issue's targets beside them."""
    lines = [*heading("sewamitra bench dispatch", machine, parameters), ""]
    rows = [("phase", "figure", "value", "target")]
    rows += [
        (phase, label, _value(figures[key], unit), _target(key, figures[key]))
        for key, (phase, label, unit) in FIGURES.items()
        if key in figures
    ]
    lines += table(rows)
    lines += [
        "",
        "Baselines: SQL = one nearest-neighbour query on PostgreSQL, named above as the SQL baseline (with",
        "PostGIS: its KNN search over the indexed workers, one row a skill, under a GiST index; without: a",
        f"haversine scan of the workers of the skill; each within the worker's radius, LIMIT {knn.LIMIT}); its",
        "loop writes one Offer row per request and commits, in one process, with no Redis, RQ, lock, audit",
        "event or SMS. Matching times each point by the index (in Redis, and in Python) and by SQL in turn;",
        "the index ranks the nearest workers it reads and keeps as many of the ranking as a new request's",
        "first round looks at (dispatch.offers.first_round_wanted), as dispatch does. Sending: the",
        "helpline's REST client of each platform (telephony.http) and the SDK's own (requests) send an",
        "offer's SMS to a sandbox of the platform in turn, 50 at a time, each timed by the sending thread's",
        "CPU clock (the sandbox answers from threads of its own).",
    ]
    lines += ["", *(f"note: {note}" for note in notes)] if notes else []
    return "\n".join(lines) + "\n"


def _value(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "x":
        return f"{value:.1f}x"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "round trips":
        return f"{value:.1f} {unit}"
    if unit == "statements":
        return f"{value:.2f} {unit}"
    return f"{value:,.0f} {unit}"


def _target(key: str, value: float) -> str:
    if key not in TARGETS:
        return ""
    target, met = TARGETS[key]
    return f"{target}: {'met' if met(value) else 'MISSED'}"
