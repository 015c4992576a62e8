"""The Redis GEO index of workers who can take a job now, one sorted set per skill.

The database is the truth; this index mirrors it (rebuilt at start, updated on every change) so
that finding the nearest worker costs one GEOSEARCH and one pipelined read, not a table scan; and
`ranked` does the search, the reads and matching.rank's filter and order in Redis, in one round trip.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar, cast

import redis
from sqlmodel import Session, select

from dispatch import quality
from dispatch.matching import Candidate
from storage.models import RequestStatus, ServiceRequest, Worker, WorkerSkill

T = TypeVar("T")

PREFIX = "sewamitra:geo:"
RADIUS = "sewamitra:worker-radius"  # hash: worker id → own service radius (km), when set
RATING = "sewamitra:worker-rating"  # hash: worker id → average rating, when rated
JOBS_TODAY = "sewamitra:jobs-today:"  # hash per day: worker id → jobs assigned
MAX_RADIUS = "sewamitra:geo-max-radius"  # the widest service radius of any indexed worker
BUILT = "sewamitra:geo-built"  # when the index was last built whole; gone when Redis lost its data
SEARCH_LIMIT = 64  # nearest workers read per search; ranking needs only the first few
# matching.rank's rules in Lua, then the search that ranks by them (see `ranked`).
RANKED_NEARBY = b"\n".join(Path(__file__).with_name(name).read_bytes() for name in ("matching.lua", "nearby.lua"))
RANKED_NEARBY_SHA = hashlib.sha1(RANKED_NEARBY, usedforsecurity=False).hexdigest()


def key(skill: str) -> str:
    return f"{PREFIX}{skill}"


def can_take_offers(
    worker: Worker, *, busy: bool, allow_parallel_jobs: bool, today: date | None = None, police_valid_days: int = 0
) -> bool:
    """Active, not suspended, police-verified (and, given `today`, not past its expiry), available,
    with a home position, and (unless allowed) not on a job."""
    return (
        worker.available
        and quality.may_visit(worker, today or date.min, police_valid_days if today else 0) is None
        and worker.latitude is not None
        and (allow_parallel_jobs or not busy)
    )


def put(
    pipe: redis.client.Pipeline, worker: Worker, skills: Iterable[str], all_skills: Iterable[str], *, offerable: bool
) -> None:
    """Add the worker under each of their skills, or take them out of every skill."""
    assert worker.id is not None
    member = str(worker.id)
    mine = set(skills) if offerable else set()
    for skill in all_skills:
        if skill in mine:
            pipe.geoadd(key(skill), (worker.longitude, worker.latitude, member))
        else:
            pipe.zrem(key(skill), member)
    _meta(pipe, worker)


def _meta(pipe: redis.client.Pipeline, worker: Worker) -> None:
    """What the ranking reads besides the distance: two hashes, so one search costs two reads."""
    member = str(worker.id)
    for name, value in ((RADIUS, worker.service_radius_km), (RATING, worker.rating)):
        if value:
            pipe.hset(name, member, value)
        else:
            pipe.hdel(name, member)


def update(
    connection: redis.Redis,
    session: Session,
    worker_id: int,
    *,
    all_skills: Iterable[str],
    allow_parallel_jobs: bool,
    today: date | None = None,
    police_valid_days: int = 0,
) -> None:
    """Bring one worker's entries in step with the database (after any change to them)."""
    worker = session.get(Worker, worker_id)
    if worker is None:
        return
    skills = session.exec(select(WorkerSkill.service_code).where(WorkerSkill.worker_id == worker_id)).all()
    busy = _busy(session, worker_id)
    offerable = can_take_offers(
        worker, busy=busy, allow_parallel_jobs=allow_parallel_jobs, today=today, police_valid_days=police_valid_days
    )
    with connection.pipeline() as pipe:
        put(pipe, worker, skills, all_skills, offerable=offerable)
        pipe.execute()
    if offerable and worker.service_radius_km and worker.service_radius_km > search_radius(connection, 0):
        connection.set(MAX_RADIUS, worker.service_radius_km)
        _widest[:] = [worker.service_radius_km, time.monotonic()]


def search_radius(connection: redis.Redis, default_radius_km: float) -> float:
    """How far to search: no worker serves further than the widest radius any of them has."""
    now = time.monotonic()
    if now - _widest[1] > WIDEST_CACHE_S:
        raw = connection.get(MAX_RADIUS)
        _widest[:] = [float(raw) if raw else 0.0, now]
    return max(default_radius_km, _widest[0])


# The widest radius changes only when a worker's does; reading it once a few seconds is enough.
WIDEST_CACHE_S = 5.0
_widest: list[float] = [0.0, float("-inf")]


def _busy(session: Session, worker_id: int) -> bool:
    query = select(ServiceRequest.id).where(
        ServiceRequest.worker_id == worker_id, ServiceRequest.status == RequestStatus.ASSIGNED
    )
    return session.exec(query.limit(1)).first() is not None


def rebuild(
    connection: redis.Redis,
    session: Session,
    *,
    all_skills: Iterable[str],
    allow_parallel_jobs: bool,
    today: date | None = None,
    police_valid_days: int = 0,
) -> int:
    """Build the whole index from the database into fresh keys, then swap them in at once."""
    skills_of: dict[int, list[str]] = {}
    for worker_id, skill in session.exec(select(WorkerSkill.worker_id, WorkerSkill.service_code)).all():
        skills_of.setdefault(worker_id, []).append(skill)
    on_a_job = select(ServiceRequest.worker_id).where(ServiceRequest.status == RequestStatus.ASSIGNED)
    busy = {worker_id for worker_id in session.exec(on_a_job).all() if worker_id is not None}
    all_skills = list(all_skills)
    indexed, widest = 0, 0.0
    with connection.pipeline(transaction=False) as pipe:
        for skill in all_skills:
            pipe.delete(key(skill) + ":new")
        for worker in session.exec(select(Worker)).all():
            offerable = can_take_offers(
                worker,
                busy=worker.id in busy,
                allow_parallel_jobs=allow_parallel_jobs,
                today=today,
                police_valid_days=police_valid_days,
            )
            if offerable:
                indexed += 1
                widest = max(widest, worker.service_radius_km or 0.0)
                for skill in skills_of.get(worker.id or 0, []):
                    pipe.geoadd(key(skill) + ":new", (worker.longitude, worker.latitude, str(worker.id)))
            _meta(pipe, worker)
        pipe.execute()
    _widest[:] = [widest, time.monotonic()]
    with connection.pipeline() as pipe:  # MULTI: every skill switches at the same moment
        pipe.set(MAX_RADIUS, widest)
        pipe.set(BUILT, time.time())
        for skill in all_skills:
            if connection.exists(key(skill) + ":new"):
                pipe.rename(key(skill) + ":new", key(skill))
            else:
                pipe.delete(key(skill))
        pipe.execute()
    return indexed


def is_built(connection: redis.Redis) -> bool:
    """Whether the index is there: a Redis restarted without its data has none, and finds nobody."""
    return bool(connection.exists(BUILT))


def nearby(
    connection: redis.Redis, skill: str, latitude: float, longitude: float, radius_km: float, today: date
) -> list[Candidate]:
    """Indexed workers of `skill` within `radius_km`, nearest first, with their radius and rating."""
    raw = connection.geosearch(
        key(skill),
        longitude=longitude,
        latitude=latitude,
        radius=radius_km,
        unit="km",
        sort="ASC",
        count=SEARCH_LIMIT,
        withdist=True,
    )
    found = [(bytes(member), float(distance)) for member, distance in cast(list[tuple[bytes, float]], raw)]
    if not found:
        return []
    members = [member for member, _ in found]
    with connection.pipeline(transaction=False) as pipe:
        pipe.hmget(RADIUS, members)
        pipe.hmget(RATING, members)
        pipe.hmget(f"{JOBS_TODAY}{today.isoformat()}", members)
        radii, ratings, jobs = pipe.execute()
    return [
        Candidate(int(member), distance, _number(radius), _number(rating), int(done or 0))
        for (member, distance), radius, rating, done in zip(found, radii, ratings, jobs, strict=True)
    ]


@dataclass(frozen=True)
class Search:
    """Where one request's ranked search looks: its skill, spot and radius (see `ranked`)."""

    skill: str
    latitude: float
    longitude: float
    radius_km: float
    reach_km: float | None = None
    wanted: int = 0  # the first of the ranking, as many as this (0: all)


def ranked(
    connection: redis.Redis,
    skill: str,
    latitude: float,
    longitude: float,
    radius_km: float,
    today: date,
    *,
    default_radius_km: float,
    reach_km: float | None = None,
    wanted: int = 0,
) -> list[Candidate]:
    """`matching.rank(nearby(...))`, worked out by Redis next to the index: one round trip instead of
    two, and only the workers who reach the spot come back, best first; given `wanted`, only the first
    of them, as many as that (the others are not read, nor ranked, nor sent)."""
    search = Search(skill, latitude, longitude, radius_km, reach_km, wanted)
    keys, args = _arguments(search, today, default_radius_km)
    answer = _with_script(connection, lambda: connection.evalsha(RANKED_NEARBY_SHA, len(keys), *keys, *args))
    return _candidates(cast(bytes, answer))


def ranked_many(
    connection: redis.Redis, searches: Sequence[Search], today: date, *, default_radius_km: float
) -> list[list[Candidate]]:
    """`ranked` of each search, in the same order, in one round trip to Redis (a dispatch batch's)."""
    if not searches:
        return []

    def run() -> list[bytes]:
        with connection.pipeline(transaction=False) as pipe:
            for search in searches:
                keys, args = _arguments(search, today, default_radius_km)
                pipe.evalsha(RANKED_NEARBY_SHA, len(keys), *keys, *args)
            return cast(list[bytes], pipe.execute())

    return [_candidates(answer) for answer in _with_script(connection, run)]


def _with_script(connection: redis.Redis, run: Callable[[], T]) -> T:
    """`run`'s answer, the ranking script loaded again first where Redis no longer has it (restarted,
    or its scripts flushed, since we last ran it)."""
    try:
        return run()
    except redis.exceptions.NoScriptError:
        connection.script_load(RANKED_NEARBY)
        return run()


def _arguments(search: Search, today: date, default_radius_km: float) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """nearby.lua's KEYS and ARGV for one search."""
    keys = (key(search.skill), RADIUS, RATING, f"{JOBS_TODAY}{today.isoformat()}")
    where = (search.longitude, search.latitude, search.radius_km, SEARCH_LIMIT)
    return keys, (*where, default_radius_km, search.reach_km or 0.0, search.wanted)


def _candidates(answer: bytes) -> list[Candidate]:
    """nearby.lua's answer: a line a worker, best first."""
    return [_candidate(*line.split(b",")) for line in answer.splitlines()]


def _candidate(member: bytes, distance: bytes, radius: bytes, rating: bytes, jobs: bytes) -> Candidate:
    """A line of nearby.lua's answer, read as `nearby` reads the same strings."""
    return Candidate(int(member), float(distance), _number(radius), _number(rating), int(jobs or 0))


def count_job(connection: redis.Redis, worker_id: int, today: date) -> None:
    """One more job for this worker today: the ranking prefers those with fewer."""
    day = f"{JOBS_TODAY}{today.isoformat()}"
    with connection.pipeline() as pipe:
        pipe.hincrby(day, str(worker_id), 1)
        pipe.expire(day, 2 * 86400)
        pipe.execute()


def _number(raw: bytes | None) -> float | None:
    return float(raw) if raw else None
