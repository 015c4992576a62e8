"""With parallel jobs allowed, dispatch asks first the workers free at the visit's time: a worker whose
job in hand is booked for an overlapping slot is asked after one who is free then, however near; for
another slot they are asked as usual. One query finds who is busy then, on each database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
from sqlmodel import Session, col

from core.clock import FrozenClock
from core.settings import Settings
from dispatch import context, jobs, offers, reach
from storage.db import session_scope
from storage.models import RequestStatus, ServiceRequest
from telephony import telephony
from tests.factories import add_request, add_worker, offers_of, request_of

pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 12, 3, 4, 30, tzinfo=UTC)  # 10:00 in Lucknow


def ist(day: int, hour: int) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC) - timedelta(hours=5, minutes=30)


TOMORROW_EVENING = (ist(4, 16), ist(4, 20))
TOMORROW_MORNING = (ist(4, 8), ist(4, 12))
TODAY_AFTERNOON = (ist(3, 12), ist(3, 16))


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    rules = helpline_settings.dispatch.model_copy(update={"allow_parallel_jobs": True, "parallel_offers": 1})
    return helpline_settings.model_copy(update={"dispatch": rules})


@pytest.fixture
def ctx(settings: Settings, engine: sa.Engine, redis_client: redis.Redis) -> Iterator[context.JobContext]:
    installed = context.JobContext(settings, engine, redis_client, telephony(settings), FrozenClock(NOW))
    context.install(installed)
    yield installed
    context.install(None)


def for_slot(engine: sa.Engine, slot: tuple[datetime, datetime] | None, worker_id: int | None = None) -> int:
    """A request at 226001 for `slot` (None: as soon as possible); assigned to `worker_id` when given."""
    request_id = add_request(engine, created=NOW)
    values: dict[str, object] = {"slot_starts_at": slot[0], "slot_ends_at": slot[1]} if slot else {}
    if worker_id is not None:
        values |= {"worker_id": worker_id, "status": RequestStatus.ASSIGNED, "assigned_at": NOW}
    if values:
        with session_scope(engine) as session:
            session.execute(sa.update(ServiceRequest).where(col(ServiceRequest.id) == request_id).values(**values))
    return request_id


@pytest.fixture
def near_and_busy(engine: sa.Engine, ctx: context.JobContext) -> tuple[int, int]:
    """Near (0.5 km) has a job tomorrow evening; Further (1.5 km) has none."""
    near = add_worker(engine, "Near", "+919800000941", 0.5)
    further = add_worker(engine, "Further", "+919800000942", 1.5)
    for_slot(engine, TOMORROW_EVENING, worker_id=near)
    jobs.rebuild_index()
    return near, further


def offered_to(engine: sa.Engine, request_id: int) -> list[int]:
    jobs.dispatch_request(request_id)
    return [offer.worker_id for offer in offers_of(engine, request_id)]


def test_a_visit_when_the_nearest_worker_is_busy_goes_first_to_one_free_then(
    engine: sa.Engine, near_and_busy: tuple[int, int]
) -> None:
    _, further = near_and_busy
    assert offered_to(engine, for_slot(engine, TOMORROW_EVENING)) == [further]


def test_a_visit_in_another_slot_goes_to_the_nearest_even_with_a_job_in_hand(
    engine: sa.Engine, near_and_busy: tuple[int, int]
) -> None:
    near, _ = near_and_busy
    assert offered_to(engine, for_slot(engine, TOMORROW_MORNING)) == [near]


def test_busy_then_is_one_answer_for_every_candidate(engine: sa.Engine, ctx: context.JobContext) -> None:
    evening, asap, done = (
        add_worker(engine, name, f"+9198000009{n}", 0.5) for n, name in ((51, "E"), (52, "A"), (53, "D"))
    )
    for_slot(engine, TOMORROW_EVENING, worker_id=evening)
    for_slot(engine, None, worker_id=asap)  # booked as soon as possible: under way now
    finished = for_slot(engine, TOMORROW_EVENING, worker_id=done)
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest).where(col(ServiceRequest.id) == finished).values(status=RequestStatus.COMPLETED)
        )
    everyone = [evening, asap, done]

    def busy(slot: tuple[datetime, datetime] | None) -> frozenset[int]:
        request_id = for_slot(engine, slot)
        with Session(engine) as session:
            return offers.busy_then(session, request_of(engine, request_id), everyone, NOW)

    assert busy(TOMORROW_EVENING) == {evening}
    assert busy(None) == {asap}  # as soon as possible: the next two hours
    assert busy(TODAY_AFTERNOON) == frozenset()  # 12:00, past the two hours from 10:00
    assert busy(TOMORROW_MORNING) == frozenset()


def test_the_agents_preview_of_a_new_round_asks_in_the_same_order(
    engine: sa.Engine, settings: Settings, near_and_busy: tuple[int, int]
) -> None:
    near, further = near_and_busy
    with Session(engine) as session:
        request = request_of(engine, for_slot(engine, TOMORROW_EVENING))
        preview = reach.new_round(session, request, None, settings.dispatch, NOW)
    assert [worker.id for worker, _ in preview.asked] == [further, near]
