"""Each job has one id, one queue and one retry policy, set in `dispatch.enqueue`: the sweeper and
the chaos tests find jobs by these ids. A Redis that cannot be reached loses nothing and raises
nothing: the call says False, and the database keeps the work for the sweeper."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.utils import get_version

from devtools.bench import roundtrips
from dispatch import calllogs, enqueue
from storage.redisdb import Lua, direct

MOMENT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SID = "SM" + "a" * 32

# what is called, and the job it queues: (queue, id, function, arguments, retries)
JOBS: list[tuple[Callable[[redis.Redis], bool], str, str, str, tuple[Any, ...], int | None]] = [
    (lambda r: enqueue.dispatch_request(r, 7), "dispatch", "dispatch-due-7", "dispatch_due", (), None),
    (lambda r: enqueue.notify_assigned(r, 7), "dispatch", "assigned-7", "notify_assigned", (7,), None),
    (lambda r: enqueue.job_cancelled(r, 7, 3), "dispatch", "cancelled-7-3", "job_cancelled", (7, 3), None),
    (lambda r: enqueue.job_moved(r, 7, 3), "dispatch", "moved-7-3", "job_moved", (7, 3), None),
    (lambda r: enqueue.worker_busy(r, 9), "dispatch", "busy-9", "worker_busy", (9,), None),
    (lambda r: enqueue.after_completion(r, 7), "default", "completed-7", "after_completion", (7,), None),
    (lambda r: enqueue.overdue_offer(r, 9), "dispatch", "expire-9", "expire_offer", (9,), None),
    (
        lambda r: enqueue.undelivered_offer(r, 9),
        "dispatch",
        "undelivered-9",
        "expire_offer",
        (9, "the SMS could not be delivered", True),
        None,
    ),
    (
        lambda r: enqueue.unanswered_offer(r, 9),
        "dispatch",
        "unanswered-9",
        "expire_offer",
        (9, "the call was not answered", True),
        None,
    ),
    (lambda r: enqueue.feedback_sms(r, 7), "dispatch", "feedback-sms-7", "feedback_sms", (7,), None),
    (
        lambda r: enqueue.ring_agent(r, 2, "+919800000002", "CA1"),
        "dispatch",
        "ring-agent-2-CA1",
        "ring_agent",
        (2, "+919800000002"),
        None,
    ),
    (lambda r: enqueue.send_sms(r, 5), "default", "sms-due-5", "send_due_sms", (), None),
    (lambda r: enqueue.handle_sms(r, 5), "dispatch", "inbound-5", "handle_sms", (5,), None),
    (
        lambda r: enqueue.receive_sms(r, SID, "+919800000001", "HAAN"),
        "dispatch",
        f"receive-{SID}",
        "receive_sms",
        (SID, "+919800000001", "HAAN"),
        8,
    ),
    (
        lambda r: enqueue.record_delivery(r, SID, "failed", "30003", 41),
        "dispatch",
        f"delivery-{SID}-failed",
        "record_delivery",
        (SID, "failed", "30003", 41),
        8,
    ),
    (lambda r: enqueue.reindex_worker(r, 4, call_sid="CA1"), "default", "reindex-4-CA1", "reindex_worker", (4,), None),
    (lambda r: enqueue.rebuild_index(r), "dispatch", "rebuild-index", "rebuild_index", (), None),
]


@pytest.fixture
def unreachable() -> Iterator[redis.Redis]:
    """A Redis client for a port nothing listens on, that gives up at the first refusal (redis-py's own
    ten tries with backoff would make each test wait some 3 s for the same error)."""
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    yield client
    client.close()


@pytest.mark.parametrize(("put", "name", "job_id", "function", "args", "retries"), JOBS)
def test_each_job_has_its_id_queue_and_retries(
    redis_client: redis.Redis,
    put: Callable[[redis.Redis], bool],
    name: str,
    job_id: str,
    function: str,
    args: tuple[Any, ...],
    retries: int | None,
) -> None:
    assert put(redis_client) is True
    [job] = Queue(name, connection=redis_client).jobs
    assert (job.id, job.func_name, tuple(job.args), job.retries_left) == (
        job_id,
        f"dispatch.jobs.{function}",
        args,
        retries,
    )


# Every job but those that take a batch of ids due (the ids join their list first: a dispatch, an SMS).
@pytest.mark.parametrize(("put", "name", "job_id"), [job[:3] for job in JOBS if "-due-" not in job[2]])
def test_each_job_is_queued_in_one_round_trip(
    redis_client: redis.Redis, put: Callable[[redis.Redis], bool], name: str, job_id: str
) -> None:
    get_version(redis_client)  # RQ asks a client once for the server's version (a web worker's, at its first job)
    with roundtrips.counted() as trips:
        assert put(redis_client) is True
    assert trips.redis == 1
    assert [job.id for job in Queue(name, connection=redis_client).jobs] == [job_id]
    assert name in {queue.name for queue in Queue.all(connection=redis_client)}  # the queue registered too


@pytest.mark.parametrize(("put", "name", "job_id", "function", "args", "retries"), JOBS)
def test_an_unreachable_redis_is_survived(
    unreachable: redis.Redis,
    put: Callable[[redis.Redis], bool],
    name: str,
    job_id: str,
    function: str,
    args: tuple[Any, ...],
    retries: int | None,
) -> None:
    assert put(unreachable) is False


def test_a_worker_reindexed_outside_a_call_gets_a_fresh_id(redis_client: redis.Redis) -> None:
    assert enqueue.reindex_worker(redis_client, 4)
    assert enqueue.reindex_worker(redis_client, 4)
    first, second = Queue("default", connection=redis_client).jobs
    assert first.id != second.id
    assert tuple(first.args) == tuple(second.args) == (4,)


def test_a_new_request_is_texted_and_dispatched_in_one_round_trip(
    redis_client: redis.Redis, unreachable: redis.Redis
) -> None:
    assert enqueue.new_request(redis_client, 7, 5)
    assert [job.id for job in Queue("default", connection=redis_client).jobs] == ["sms-due-5"]
    assert [job.id for job in Queue("dispatch", connection=redis_client).jobs] == ["dispatch-due-7"]
    with roundtrips.counted() as trips:
        assert enqueue.new_request(redis_client, 8, 6)  # the jobs queued for 7 and its SMS take 8 and its SMS too
    assert trips.redis == 1
    assert [job.id for job in Queue("default", connection=redis_client).jobs] == ["sms-due-5"]
    assert [job.id for job in Queue("dispatch", connection=redis_client).jobs] == ["dispatch-due-7"]
    assert enqueue.new_request(redis_client, 9, None)  # a number that cannot get an SMS
    assert enqueue.DISPATCH.take(redis_client) == [7, 8, 9]
    assert enqueue.TEXTS.take(redis_client) == [5, 6]
    assert enqueue.new_request(unreachable, 10, 7) is False


@pytest.mark.parametrize(
    ("due", "put"),
    [(enqueue.DISPATCH, enqueue.dispatch_requests), (enqueue.TEXTS, enqueue.send_many_sms)],
    ids=["requests", "sms"],
)
def test_ids_due_are_taken_in_order_by_one_job_a_batch(
    redis_client: redis.Redis, due: enqueue.Due, put: Callable[[redis.Redis, list[int]], bool]
) -> None:
    """However the ids come (one by one, or many at once from the sweeper), there is a job queued for
    each batch of them waiting, and each job takes the next batch."""
    batch = due.batch
    assert put(redis_client, [1])
    assert put(redis_client, list(range(2, 2 * batch + 2)))  # 1 .. 2 batches + 1
    queued = Queue(due.queue.value, connection=redis_client)
    assert [job.id for job in queued.jobs] == [due.job_id.format(n) for n in (1, batch + 1, 2 * batch + 1)]
    assert {job.func_name for job in queued.jobs} == {f"dispatch.jobs.{due.job}"}
    assert {job.timeout for job in queued.jobs} == {due.timeout_s}  # a batch outlasts RQ's 180 s
    assert due.take(redis_client) == list(range(1, batch + 1))
    assert put(redis_client, [100])  # 2 batches + 1 still wait: no job more
    assert len(queued.jobs) == 3
    assert due.take(redis_client) == list(range(batch + 1, 2 * batch + 1))
    assert due.take(redis_client) == [2 * batch + 1, 100]
    assert due.take(redis_client) == []


def test_the_sweeper_queues_jobs_for_ids_a_lost_job_left_waiting(redis_client: redis.Redis) -> None:
    redis_client.rpush(enqueue.DISPATCH.key, *range(1, enqueue.DISPATCH.batch + 2))  # pushed, and their jobs lost
    redis_client.rpush(enqueue.TEXTS.key, 5)
    assert enqueue.jobs_for_what_waits(redis_client)
    assert [job.func_name for job in Queue("dispatch", connection=redis_client).jobs] == [
        "dispatch.jobs.dispatch_due"
    ] * 2
    assert [job.func_name for job in Queue("default", connection=redis_client).jobs] == ["dispatch.jobs.send_due_sms"]
    redis_client.delete(enqueue.DISPATCH.key, enqueue.TEXTS.key)
    assert enqueue.jobs_for_what_waits(redis_client)  # nothing waits: nothing queued
    assert len(Queue("dispatch", connection=redis_client).jobs) == 2


def test_a_refused_sms_is_tried_again_by_a_job_of_its_own_on_its_schedule(
    redis_client: redis.Redis, unreachable: redis.Redis
) -> None:
    before = datetime.now(UTC)
    assert enqueue.retry_sms(redis_client, 5)
    scheduled = ScheduledJobRegistry("default", connection=redis_client)
    assert scheduled.get_job_ids() == ["sms-5"]
    assert scheduled.get_scheduled_time("sms-5") >= before.replace(microsecond=0) + timedelta(seconds=10)
    [job] = Job.fetch_many(["sms-5"], connection=redis_client)
    assert job is not None
    assert (job.func_name, tuple(job.args), job.retries_left, job.retry_intervals) == (
        "dispatch.jobs.send_sms",
        (5,),
        2,
        [30, 90],
    )
    assert enqueue.retry_sms(unreachable, 6) is False


def test_new_offers_are_looked_at_when_their_time_is_up_in_one_round_trip(
    redis_client: redis.Redis, unreachable: redis.Redis
) -> None:
    """The dispatch job sends the offers it makes itself: only their expiries wait, by their second."""
    later = MOMENT + timedelta(seconds=30, milliseconds=400)
    in_india = MOMENT.astimezone(ZoneInfo("Asia/Kolkata")) + timedelta(seconds=60)
    with roundtrips.counted() as trips:
        assert enqueue.offer_expiries(redis_client, [(11, MOMENT), (12, later), (13, in_india)])
    assert trips.redis == 1
    assert Queue("dispatch", connection=redis_client).jobs == []
    assert redis_client.zrange(enqueue.EXPIRING, 0, -1, withscores=True) == [
        (b"11", (MOMENT + enqueue.EXPIRY_MARGIN).timestamp()),
        (b"12", (MOMENT + timedelta(seconds=32)).timestamp()),  # a second's part is a whole second more
        (b"13", (MOMENT + timedelta(seconds=61)).timestamp()),
    ]
    assert enqueue.offer_expiries(unreachable, [(13, MOMENT)]) is False


def test_a_naive_moment_is_read_as_utc_whatever_the_servers_zone(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert enqueue.offer_expiry(redis_client, 14, MOMENT.replace(tzinfo=None))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert redis_client.zscore(enqueue.EXPIRING, "14") == (MOMENT + enqueue.EXPIRY_MARGIN).timestamp()


def test_the_offers_due_are_moved_each_once_with_a_job_for_each_batch_they_open(redis_client: redis.Redis) -> None:
    moments = {offer_id: MOMENT + timedelta(seconds=offer_id % 3) for offer_id in range(1, 46)}
    assert enqueue.offer_expiries(redis_client, [(offer_id, at) for offer_id, at in moments.items()])
    dispatch = Queue("dispatch", connection=redis_client)

    assert enqueue.move_expired(redis_client, now=MOMENT)  # none is due before its margin
    assert redis_client.llen(enqueue.EXPIRED.key) == 0
    assert enqueue.move_expired(redis_client, now=MOMENT + enqueue.EXPIRY_MARGIN + timedelta(seconds=1))

    due_by_then = [offer_id for offer_id, at in moments.items() if at <= MOMENT + timedelta(seconds=1)]
    assert sorted(int(offer_id) for offer_id in redis_client.lrange(enqueue.EXPIRED.key, 0, -1)) == due_by_then
    assert len(due_by_then) == 30
    first_of_batches = sorted(int(job_id.removeprefix("expire-due-")) for job_id in dispatch.job_ids)
    assert len(first_of_batches) == 2  # 30 ids: batches of 20 open at the 1st and the 21st
    assert redis_client.zcard(enqueue.EXPIRING) == 15

    assert enqueue.move_expired(redis_client, now=MOMENT + enqueue.EXPIRY_MARGIN + timedelta(seconds=1))
    assert redis_client.llen(enqueue.EXPIRED.key) == 30  # moved once
    assert len(dispatch.job_ids) == 2


def test_a_backlog_of_expiries_is_moved_whole_in_one_call(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enqueue, "MOVED_AT_MOST", 7)
    assert enqueue.offer_expiries(redis_client, [(offer_id, MOMENT) for offer_id in range(1, 31)])

    assert enqueue.move_expired(redis_client, now=MOMENT + timedelta(minutes=10))

    assert redis_client.llen(enqueue.EXPIRED.key) == 30
    assert redis_client.zcard(enqueue.EXPIRING) == 0
    assert len(Queue("dispatch", connection=redis_client).job_ids) == 2


def test_an_offer_sent_again_later_is_scheduled_under_its_attempt(redis_client: redis.Redis) -> None:
    assert enqueue.offer_resent(redis_client, 11, 2, timedelta(seconds=10))
    scheduled = ScheduledJobRegistry("dispatch", connection=redis_client)
    assert scheduled.get_job_ids() == ["offer-11-2"]


def test_the_call_logs_writer_is_queued_once_while_logs_wait(
    redis_client: redis.Redis, unreachable: redis.Redis
) -> None:
    """The mover of delayed jobs asks each second: no log waiting, no writer; logs waiting, one
    writer until it has run."""
    assert enqueue.call_log_writer(redis_client)
    assert Queue("default", connection=redis_client).jobs == []
    redis_client.rpush(calllogs.DUE, "{}")
    assert enqueue.call_log_writer(redis_client)
    assert enqueue.call_log_writer(redis_client)
    [job] = Queue("default", connection=redis_client).jobs
    assert (job.func_name, tuple(job.args)) == ("dispatch.jobs.write_call_logs", ())
    assert 0 < redis_client.ttl(enqueue.CALL_LOG_WRITER) <= enqueue.CALL_LOG_WRITER_S  # a lost writer is queued again
    enqueue.call_log_writer_done(redis_client)
    assert enqueue.call_log_writer(redis_client)
    assert len(Queue("default", connection=redis_client).jobs) == 2
    assert enqueue.call_log_writer(unreachable) is False


def test_redis_that_lost_its_data_is_swept_at_once_and_only_then(
    redis_client: redis.Redis, unreachable: redis.Redis
) -> None:
    """The mover of delayed jobs asks each second. A Redis holding the helpline's keys gets no sweep;
    one that came back without them (or a new one) gets one at once, not at the scheduler's next turn."""

    def sweeps() -> list[Job]:
        queued = Queue("dispatch", connection=redis_client).jobs
        return [job for job in queued if job.func_name == "dispatch.jobs.sweep"]

    assert enqueue.sweep_if_redis_lost_its_data(redis_client)
    assert len(sweeps()) == 1
    assert enqueue.sweep_if_redis_lost_its_data(redis_client)
    enqueue.each_second(redis_client)
    assert len(sweeps()) == 1

    redis_client.flushdb()  # as a Redis restarted with no persistence holds nothing
    enqueue.each_second(redis_client)
    [sweep] = sweeps()
    assert sweep.result_ttl == enqueue.SWEEP_RESULT_TTL
    assert redis_client.exists(enqueue.KEPT)
    assert enqueue.sweep_if_redis_lost_its_data(unreachable) is False


def test_ids_held_go_in_the_round_trip_of_the_callers_write_and_open_their_batches(redis_client: redis.Redis) -> None:
    """A call's turn files a request and an SMS: their ids are pushed with the turn's own write (a
    script standing for it), and the jobs their lists' lengths call for are queued after."""
    turn = Lua("return redis.call('SET', KEYS[1], 'saved')")
    redis_client.script_load(turn.text)
    direct(redis_client)("PING")  # this thread's connection made
    with enqueue.held(redis_client) as holding:
        with roundtrips.counted() as trips:
            assert enqueue.new_request(redis_client, 7, 5)
            assert enqueue.send_sms(redis_client, 6)
            assert trips.redis == 0  # held
            saved, answers = direct(redis_client).run_with(turn, ["sewamitra:test:turn"], [], holding.take())
            assert (saved, trips.redis) == (b"OK", 1)  # the write and the pushes, in one round trip
        holding.answered(answers)
        with roundtrips.counted() as trips:
            assert enqueue.dispatch_request(redis_client, 8)  # after the take: pushed at once
        assert trips.redis == 1
    assert [job.id for job in Queue("default", connection=redis_client).jobs] == ["sms-due-5"]
    assert [job.id for job in Queue("dispatch", connection=redis_client).jobs] == ["dispatch-due-7"]
    assert enqueue.DISPATCH.take(redis_client) == [7, 8]
    assert enqueue.TEXTS.take(redis_client) == [5, 6]


def test_ids_held_by_a_turn_that_failed_are_pushed_all_the_same(redis_client: redis.Redis) -> None:
    def a_turn_that_fails_after_filing() -> None:
        with enqueue.held(redis_client):
            assert enqueue.new_request(redis_client, 7, 5)
            raise RuntimeError("an effect after the filing failed")

    with pytest.raises(RuntimeError):
        a_turn_that_fails_after_filing()
    assert enqueue.DISPATCH.take(redis_client) == [7]
    assert enqueue.TEXTS.take(redis_client) == [5]
    assert [job.id for job in Queue("dispatch", connection=redis_client).jobs] == ["dispatch-due-7"]


def test_ids_held_for_another_client_are_not_held(redis_client: redis.Redis) -> None:
    other = redis.Redis(connection_pool=redis_client.connection_pool)
    with enqueue.held(other) as holding:
        assert enqueue.new_request(redis_client, 7, None)
        assert enqueue.DISPATCH.take(redis_client) == [7]  # pushed already
        assert holding.take() == []


def test_a_refused_push_among_the_held_leaves_its_ids_to_the_sweeper_and_the_others_go(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.set(enqueue.TEXTS.key, "not a list")
    with enqueue.held(redis_client) as holding:
        enqueue.send_sms(redis_client, 5)
        enqueue.dispatch_request(redis_client, 7)
        _done, answers = direct(redis_client).run_with(Lua("return 1"), [], [], holding.take())
        holding.answered(answers)
    assert "Redis refused SMS 5" in caplog.text
    assert enqueue.DISPATCH.take(redis_client) == [7]
    assert [job.id for job in Queue("dispatch", connection=redis_client).jobs] == ["dispatch-due-7"]
    assert Queue("default", connection=redis_client).jobs == []


def test_a_script_sent_with_other_commands_is_loaded_when_redis_lacks_it_and_they_run_once(
    redis_client: redis.Redis,
) -> None:
    # A script Redis has never seen (not SCRIPT FLUSH: the other test processes share this Redis, and
    # their scripts with it)
    script = Lua(f"-- {uuid.uuid4()}\nreturn redis.call('INCR', KEYS[1])")
    commands = direct(redis_client)
    counted, answers = commands.run_with(script, ["sewamitra:test:runs"], [], [("RPUSH", "sewamitra:test:also", "a")])
    assert (counted, answers) == (1, [1])  # the script ran once, loaded after NOSCRIPT; the push once
    assert redis_client.script_exists(script.sha) == [True]
    counted, answers = commands.run_with(script, ["sewamitra:test:runs"], [], [("INCR", "sewamitra:test:also")])
    assert counted == 2
    assert isinstance(answers[0], redis.exceptions.ResponseError)  # Redis's answer to it, not raised
    assert redis_client.lrange("sewamitra:test:also", 0, -1) == [b"a"]
