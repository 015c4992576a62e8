"""Every job the helpline queues: its id, its queue, its retry policy, and what a Redis error does.

Called after the commit that made the work. Redis refusing a job loses nothing: the database holds
the work, and the sweeper (or the scheduled index rebuild) queues it again; so a Redis error is
logged here and the caller goes on. Job ids are fixed here, once: the sweeper and the tests know
jobs by them. RQ does not dedupe by id: a job queued twice runs twice, and every job can.

Jobs are named by their dotted path (RQ imports them in the worker), so that `dispatch.jobs`, whose
jobs queue further jobs, can use this module too.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Retry

from dispatch import calllogs
from dispatch.queues import QueueName, queue
from storage.redisdb import Lua, direct

log = logging.getLogger(__name__)
# A refused send is tried again after these pauses (seconds), then left as failed.
SMS_RETRY = Retry(max=3, interval=[10, 30, 90])
# A webhook whose write the database could not take hands it to a job, tried again for about an
# hour; after that it waits in RQ's failed registry for an operator, never dropped.
DATABASE_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 120, 300, 600, 1800])
RESULT_TTL = 60  # seconds RQ keeps a dispatch job's result: enough to look at, not to pile up
EXPIRY_MARGIN = timedelta(seconds=1)  # expiries are due, and moved, in whole seconds
JOBS = "dispatch.jobs."
SWEEPER = "the sweeper queues it again"


def _attempt(put: Callable[[], object], what: str, then: str = SWEEPER) -> bool:
    """Whether Redis took the job(s) `put` queues; a Redis error is logged, never raised."""
    try:
        put()
    except redis.RedisError:
        log.exception("could not queue %s; %s", what, then)
        return False
    return True


def _put(
    connection: redis.Redis,
    name: QueueName,
    job: str,
    *args: object,
    job_id: str | None,
    then: str = SWEEPER,
    **options: object,
) -> bool:
    """Queue `dispatch.jobs.<job>(*args)` on `name`; `then` says what makes up for a refusal."""
    return _attempt(
        lambda: _one_trip(connection, name, JOBS + job, *args, job_id=job_id, **options), job_id or job, then
    )


def _one_trip(connection: redis.Redis, name: QueueName, job: Any, *args: object, **options: object) -> None:
    """One job queued in one round trip: RQ, left to itself, registers the queue and then the job in two."""
    with connection.pipeline() as pipe:
        queue(connection, name).enqueue(job, *args, pipeline=pipe, **options)
        pipe.execute()


# -- a request --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """Ids waiting in a Redis list, oldest first, for a job that takes the next `batch` of them (RQ's own
    handling of a job costs about as much CPU as the work on one id: one job a burst, not one an id). A
    job is queued each time the list reaches 1, 1 + batch, … ids, so there are always enough queued to
    take what waits, and a burst's jobs are shared among the RQ workers; each is named by the id that
    opened its batch. Ids lost with Redis, or with a job that died, are the sweeper's, as a lost job of
    one id's was."""

    key: str
    batch: int
    queue: QueueName
    job: str
    job_id: str  # with the id that opened the batch in place of {}
    timeout_s: int  # a batch whose every call to the platform waits out its 10 s still ends (RQ's default: 180 s)

    def opened(self, pushed: Sequence[int], waiting: int) -> list[str]:
        """The jobs the ids just pushed (the last `len(pushed)` of `waiting`) call for, by id."""
        first = waiting - len(pushed) + 1
        return [self.job_id.format(id_) for place, id_ in enumerate(pushed, first) if (place - 1) % self.batch == 0]

    def take(self, connection: redis.Redis) -> list[int]:
        """The next batch, taken off the list (a job that dies with them leaves them to the sweeper)."""
        return [int(id_) for id_ in connection.lpop(self.key, self.batch) or []]

    def queue_job(self, connection: redis.Redis, job_id: str | None, pipe: redis.client.Pipeline) -> None:
        queue(connection, self.queue).enqueue(
            JOBS + self.job, job_id=job_id, result_ttl=RESULT_TTL, job_timeout=self.timeout_s, pipeline=pipe
        )


# Requests waiting for a dispatch job (`jobs.dispatch_due`): a request left new, or offered with no offer
# open, is the sweeper's.
DISPATCH = Due("sewamitra:dispatch:due", 20, QueueName.DISPATCH, "dispatch_due", "dispatch-due-{}", 600)
# SMS recorded as pending, waiting for a sending job (`jobs.send_due_sms`): a web turn that records one
# pushes its id (one RPUSH), not a job of its own (RQ's job hash, some fifteen fields). One the platform
# refuses is tried again by a job of its own (`retry_sms`); one never tried is the sweeper's.
TEXTS = Due("sewamitra:sms:due", 20, QueueName.DEFAULT, "send_due_sms", "sms-due-{}", 600)
# Offers waiting for their time to come (a sorted set: offer id -> the epoch second its expiry is due,
# its time and `EXPIRY_MARGIN`): one ZADD for a dispatch job's new offers, where an RQ job each cost
# some 0.2 ms of that job's CPU to make (its hash of some fifteen fields, the scheduled registry) and as
# much again to run. The mover of delayed jobs moves those due onto `EXPIRED` each second
# (`move_expired`), for jobs that expire the next batch (`jobs.expire_due`). Ids lost with Redis are
# the sweeper's: it expires every offer past its time.
EXPIRING = "sewamitra:offers:expiring"
EXPIRED = Due("sewamitra:offers:expired", 20, QueueName.DISPATCH, "expire_due", "expire-due-{}", 600)
MOVED_AT_MOST = 1_000  # expiries moved a round trip: a backlog (a mover stopped for minutes) takes several
DUES = (DISPATCH, TEXTS, EXPIRED)  # every list of ids due for a batch job
# Handling an inbound SMS is a few queries (a row lock waited on at most): RQ stops one still at it after
# this, so that one claimed longer ago than this and a margin died with its worker (jobs.ABANDONED_AFTER).
HANDLE_SMS_TIMEOUT_S = 60


def new_request(connection: redis.Redis, request_id: int, sms_id: int | None) -> bool:
    """A request just filed: text its number and dispatch it, both in one round trip to Redis (two
    when it opens a batch), or held for the round trip of the turn that filed it (`held`)."""
    joining = [(DISPATCH, [request_id])] + ([(TEXTS, [sms_id])] if sms_id is not None else [])
    return _push(connection, joining, f"request {request_id}")


def dispatch_request(connection: redis.Redis, request_id: int) -> bool:
    """Offer the request to the next workers (a new round, or the next after a no)."""
    return dispatch_requests(connection, [request_id])


def dispatch_requests(connection: redis.Redis, request_ids: Sequence[int]) -> bool:
    """Offer each request to the next workers: they join the requests due, and jobs to take them are
    queued as their number calls for, in one round trip or two."""
    return _join(connection, DISPATCH, request_ids, "the dispatch of requests")


def _join(connection: redis.Redis, due: Due, ids: Sequence[int], what: str) -> bool:
    """The ids join those due, and the jobs their batches call for are queued: one round trip, or two
    (or held, `held`)."""
    if not ids:
        return True
    return _push(connection, [(due, ids)], what + " " + ", ".join(str(id_) for id_ in ids))


def _push(connection: redis.Redis, joining: Sequence[tuple[Due, Sequence[int]]], what: str) -> bool:
    """Each list's ids pushed in one round trip and the jobs their batches call for queued; or, inside
    `held` on the same client, held for the caller's round trip (True: it is to go)."""

    def opened(waiting: Sequence[int]) -> list[tuple[Due, str]]:
        return [
            (due, job_id)
            for (due, ids), count in zip(joining, waiting, strict=True)
            for job_id in due.opened(ids, count)
        ]

    pushes = _Pushes([("RPUSH", due.key, *ids) for due, ids in joining], opened, what)
    holding = _held.get()
    if holding is not None and holding.connection is connection and not holding.taken:
        holding.pushes.append(pushes)
        return True
    return _attempt(functools.partial(pushes.send, connection), what)


@dataclass(frozen=True)
class _Pushes:
    """Ids pushed onto the lists due; then the jobs the lists' lengths call for."""

    commands: list[tuple[Any, ...]]
    opened: Callable[[Sequence[int]], list[tuple[Due, str]]]
    what: str

    def send(self, connection: redis.Redis) -> None:
        self.queue_jobs(connection, direct(connection).each(*self.commands))

    def queue_jobs(self, connection: redis.Redis, lengths: Sequence[Any]) -> None:
        _batch_jobs(connection, self.opened([int(length) for length in lengths]))


@dataclass
class Holding:
    """The pushes held by `held`, to go in the round trip of the caller's last write: `take` their
    commands for it, then give Redis's answers to `answered`."""

    connection: redis.Redis
    pushes: list[_Pushes] = field(default_factory=list)
    taken: bool = False

    def take(self) -> list[tuple[Any, ...]]:
        """The commands, taken to be sent: whatever then becomes of their round trip, they are not
        sent again (an id Redis did not get is the sweeper's, as when a push of its own failed)."""
        self.taken = True
        return [command for pushes in self.pushes for command in pushes.commands]

    def answered(self, answers: Sequence[Any]) -> None:
        """What Redis answered to the commands taken: the jobs the lists' lengths call for are queued."""
        at = 0
        for pushes in self.pushes:
            mine, at = answers[at : at + len(pushes.commands)], at + len(pushes.commands)
            refused = next((answer for answer in mine if isinstance(answer, Exception)), None)
            if refused is not None:
                log.error("Redis refused %s (%s); %s", pushes.what, refused, SWEEPER)
                continue
            _attempt(functools.partial(pushes.queue_jobs, self.connection, mine), pushes.what)

    def send(self) -> None:
        """The pushes not taken, each in a round trip of its own."""
        if self.taken:
            return
        self.taken = True
        for pushes in self.pushes:
            _attempt(functools.partial(pushes.send, self.connection), pushes.what)


_held: ContextVar[Holding | None] = ContextVar("sewamitra_held_pushes", default=None)


@contextmanager
def held(connection: redis.Redis) -> Iterator[Holding]:
    """Inside, the ids that `new_request`, `send_sms` and the like push onto the lists due (on
    `connection`) are held, to go in the round trip of the caller's last write to Redis: a call's turn
    files a request and texts it in the round trip that stores its answer (`CallState.save`), not in
    one of their own. What was not sent so (the turn failed, or made no such write) goes at the end,
    in a round trip of its own, whatever happened."""
    holding = Holding(connection)
    token = _held.set(holding)
    try:
        yield holding
    finally:
        _held.reset(token)
        holding.send()


def _batch_jobs(connection: redis.Redis, opened: Sequence[tuple[Due, str]]) -> None:
    if not opened:
        return
    with connection.pipeline() as pipe:
        for due, job_id in opened:
            due.queue_job(connection, job_id, pipe)
        pipe.execute()


def jobs_for_what_waits(connection: redis.Redis) -> bool:
    """Jobs enough for every id due, requests and SMS, whatever was queued before (the sweeper's, after a
    lost job left ids waiting; a job too many finds nothing to do)."""

    def put() -> None:
        with connection.pipeline() as pipe:
            for due in DUES:
                pipe.llen(due.key)
            waiting = pipe.execute()
        with connection.pipeline() as pipe:
            for due, count in zip(DUES, waiting, strict=True):
                for _ in range(-(-int(count) // due.batch)):
                    due.queue_job(connection, None, pipe)
            pipe.execute()

    return _attempt(put, "the jobs of the requests, SMS and offer expiries due")


DISPATCH_AGAIN_JOB_ID = "dispatch-{}-again"  # with the request's id in place of {}


def dispatch_again(connection: redis.Redis, request_id: int, delay: timedelta) -> bool:
    """The request's dispatch, after `delay`: another held it. One such job at a time per request."""
    job_id = DISPATCH_AGAIN_JOB_ID.format(request_id)

    def put() -> None:
        queue(connection, QueueName.DISPATCH).enqueue_in(
            delay, JOBS + "dispatch_request", request_id, job_id=job_id, result_ttl=RESULT_TTL
        )

    return _attempt(put, job_id, SWEEPER)


def notify_assigned(connection: redis.Redis, request_id: int) -> bool:
    """Tell the citizen and the worker who took the job."""
    return _put(connection, QueueName.DISPATCH, "notify_assigned", request_id, job_id=f"assigned-{request_id}")


def climb_ladder(connection: redis.Redis, request_id: int, from_level: int) -> bool:
    """Move a request past its rung's deadline up the escalation ladder, and tell the new rung."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "climb_ladder",
        request_id,
        from_level,
        job_id=f"ladder-{request_id}-{from_level}",
        result_ttl=RESULT_TTL,
    )


def job_closed(connection: redis.Redis, request_id: int, worker_id: int) -> bool:
    """Tell a worker an officer closed the job they had in hand: they need not go."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "job_closed",
        request_id,
        worker_id,
        job_id=f"closed-{request_id}",
        then="the worker is not told; the next index rebuild frees them",
    )


def ring_officer(connection: redis.Redis, call_id: int) -> bool:
    """An officer asked, on a request's page, to call its citizen: ring the officer's phone first."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "ring_officer",
        call_id,
        job_id=f"citizen-call-{call_id}",
        then="the console shows the call as placed; the officer tries again",
    )


def ring_agent_for_callback(connection: redis.Redis, attempt_id: int) -> bool:
    """An agent clicked "Call now" on a callback: ring the agent's phone first."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "ring_agent_for_callback",
        attempt_id,
        job_id=f"callback-call-{attempt_id}",
        then="the try waits for its outcome; the agent rings the caller by hand or tries again",
    )


def job_cancelled(connection: redis.Redis, request_id: int, worker_id: int) -> bool:
    """Tell a worker not to go: the job they had taken, or been offered, was cancelled."""
    job_id = f"cancelled-{request_id}-{worker_id}"
    return _put(connection, QueueName.DISPATCH, "job_cancelled", request_id, worker_id, job_id=job_id)


def job_moved(connection: redis.Redis, request_id: int, worker_id: int) -> bool:
    """Tell the worker keeping a job its new time."""
    job_id = f"moved-{request_id}-{worker_id}"
    return _put(connection, QueueName.DISPATCH, "job_moved", request_id, worker_id, job_id=job_id)


def worker_busy(connection: redis.Redis, offer_id: int) -> bool:
    """Text a worker who said yes on the phone with a job in hand which job to finish first."""
    return _put(connection, QueueName.DISPATCH, "worker_busy", offer_id, job_id=f"busy-{offer_id}")


def after_completion(connection: redis.Redis, request_id: int) -> bool:
    """Free the worker and ask the citizen for a rating."""
    return _put(connection, QueueName.DEFAULT, "after_completion", request_id, job_id=f"completed-{request_id}")


def late_visit(connection: redis.Redis, request_id: int) -> bool:
    """A visit not started in time: flag it to the agency, or take it back and offer it again."""
    return _put(connection, QueueName.DISPATCH, "late_visit", request_id, job_id=f"late-visit-{request_id}")


# -- offers -----------------------------------------------------------------------------------------


def offer_expiries(connection: redis.Redis, due: Sequence[tuple[int, datetime]]) -> bool:
    """Look at each new offer again when its time is up (`EXPIRING`), all in one round trip to Redis.
    (The dispatch job that made them sends them itself.)"""
    if not due:
        return True
    times = {str(offer_id): _second_of(expires_at + EXPIRY_MARGIN) for offer_id, expires_at in due}
    offers = ", ".join(times)
    return _attempt(
        lambda: connection.zadd(EXPIRING, times), f"the expiry of offers {offers}", "the sweeper expires them"
    )


def _second_of(moment: datetime) -> int:
    """The epoch second at or after `moment` (a naive one read as UTC, as RQ reads it)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return math.ceil(aware.timestamp())


def offer_expiry(connection: redis.Redis, offer_id: int, expires_at: datetime) -> bool:
    """Look at an offer again when its time is up."""
    return offer_expiries(connection, [(offer_id, expires_at)])


def move_expired(connection: redis.Redis, now: datetime | None = None) -> bool:
    """The offers whose expiry is due moved from `EXPIRING` onto `EXPIRED`, and the jobs their batches
    call for queued. The mover of delayed jobs asks each second."""
    moment = math.floor((now or datetime.now(UTC)).timestamp())

    def put() -> None:
        while True:
            length, *moved = direct(connection).run(MOVE_EXPIRED, [EXPIRING, EXPIRED.key], [moment, MOVED_AT_MOST])
            ids = [int(offer_id) for offer_id in moved]
            _batch_jobs(connection, [(EXPIRED, job_id) for job_id in EXPIRED.opened(ids, int(length))])
            if len(ids) < MOVED_AT_MOST:
                return

    return _attempt(put, "the offers whose time is up", "the next second moves them, or the sweeper")


# Those due (at most ARGV[2], by ARGV[1], the epoch second now) off the sorted set KEYS[1] and onto the
# list KEYS[2]: the list's length, then their ids. One script, so two movers for a moment move each once.
MOVE_EXPIRED = Lua("""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then return {0} end
redis.call('ZREM', KEYS[1], unpack(due))
local length = redis.call('RPUSH', KEYS[2], unpack(due))
return {length, unpack(due)}
""")


def offer_resent(connection: redis.Redis, offer_id: int, attempt: int, delay: timedelta) -> bool:
    """Try an offer's SMS or call again after `delay`: this is try number `attempt`."""
    job_id = f"offer-{offer_id}-{attempt}"

    def put() -> None:
        queue(connection, QueueName.DISPATCH).enqueue_in(delay, JOBS + "send_offer", offer_id, attempt, job_id=job_id)

    return _attempt(put, job_id, "the offer expires in its time")


def overdue_offer(connection: redis.Redis, offer_id: int) -> bool:
    """An offer whose expiry job was lost: expire it now."""
    return _put(connection, QueueName.DISPATCH, "expire_offer", offer_id, job_id=f"expire-{offer_id}")


def undelivered_offer(connection: redis.Redis, offer_id: int) -> bool:
    """The offer's SMS could not be delivered: it goes unanswered, to the next worker."""
    return _unanswered(connection, offer_id, "undelivered", "the SMS could not be delivered")


def unanswered_offer(connection: redis.Redis, offer_id: int) -> bool:
    """The worker did not pick up the offer's call: it goes unanswered, to the next worker."""
    return _unanswered(connection, offer_id, "unanswered", "the call was not answered")


def _unanswered(connection: redis.Redis, offer_id: int, why: str, reason: str) -> bool:
    return _put(connection, QueueName.DISPATCH, "expire_offer", offer_id, reason, True, job_id=f"{why}-{offer_id}")


# -- SMS --------------------------------------------------------------------------------------------


def send_sms(connection: redis.Redis, sms_id: int) -> bool:
    """Send an SMS already recorded as pending: it joins the SMS due (`TEXTS`)."""
    return send_many_sms(connection, [sms_id])


def send_many_sms(connection: redis.Redis, sms_ids: Sequence[int]) -> bool:
    """Send SMS already recorded as pending: they join the SMS due, in one round trip or two."""
    return _join(connection, TEXTS, sms_ids, "SMS")


def retry_sms(connection: redis.Redis, sms_id: int) -> bool:
    """An SMS the platform refused, tried again by a job of its own, on SMS_RETRY's schedule."""
    first, *then = SMS_RETRY.intervals
    return _attempt(
        lambda: queue(connection, QueueName.DEFAULT).enqueue_in(
            timedelta(seconds=first),
            JOBS + "send_sms",
            sms_id,
            job_id=f"sms-{sms_id}",
            retry=Retry(max=len(then), interval=then),
        ),
        f"sms-{sms_id}",
    )


def handle_sms(connection: redis.Redis, sms_id: int) -> bool:
    """Act on an SMS recorded as received."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "handle_sms",
        sms_id,
        job_id=f"inbound-{sms_id}",
        job_timeout=HANDLE_SMS_TIMEOUT_S,
    )


def receive_sms(connection: redis.Redis, message_sid: str, sender: str, body: str) -> bool:
    """An SMS that came while the database was unreachable: a job records it when it is back."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "receive_sms",
        message_sid,
        sender,
        body,
        job_id=f"receive-{message_sid}",
        retry=DATABASE_RETRY,
    )


def record_delivery(
    connection: redis.Redis, message_sid: str, status: str, error_code: str, sms_id: int | None = None
) -> bool:
    """A delivery report that came while the database was unreachable: a job records it when it is back."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "record_delivery",
        message_sid,
        status,
        error_code,
        sms_id,
        job_id=f"delivery-{message_sid}-{status}",
        retry=DATABASE_RETRY,
    )


# -- calls ----------------------------------------------------------------------------------------


def feedback_sms(connection: redis.Redis, request_id: int) -> bool:
    """The citizen did not pick up the feedback call: ask for the rating by SMS."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "feedback_sms",
        request_id,
        job_id=f"feedback-sms-{request_id}",
        then="the citizen is asked by no SMS",
    )


def ring_agent(connection: redis.Redis, user_id: int, desk_phone: str, call_sid: str) -> bool:
    """An agent took caller `call_sid` from the console: ring their desk phone."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "ring_agent",
        user_id,
        desk_phone,
        job_id=f"ring-agent-{user_id}-{call_sid}",
        then="the console tells the agent",
    )


def ring_supervisor(connection: redis.Redis, session_id: str, phone: str) -> bool:
    """A supervisor asked to monitor an agent's call from the wall: ring their phone."""
    return _put(
        connection,
        QueueName.DISPATCH,
        "ring_supervisor",
        session_id,
        phone,
        job_id=f"ring-supervisor-{session_id}",
        then="the wall tells the supervisor",
    )


# The call logs' writer is queued (`call_log_writer`) at most once this long, while none ran: a writer
# that died, or a database that is out, is tried again after it.
CALL_LOG_WRITER = "sewamitra:calllogs:writer-queued"
CALL_LOG_WRITER_S = 30


def call_log_writer(connection: redis.Redis) -> bool:
    """The writer of the call logs waiting (`dispatch.calllogs`), queued when some wait and none is
    queued already. The mover of delayed jobs asks each second."""

    def put() -> None:
        if not connection.llen(calllogs.DUE):
            return
        if connection.set(CALL_LOG_WRITER, 1, nx=True, ex=CALL_LOG_WRITER_S):
            _one_trip(connection, QueueName.DEFAULT, JOBS + "write_call_logs", job_id=None, result_ttl=RESULT_TTL)

    return _attempt(put, "the call logs' writer", "the next second queues it")


def call_log_writer_done(connection: redis.Redis) -> None:
    """The writer ran: the next logs queue the next."""
    connection.delete(CALL_LOG_WRITER)


# Set while Redis holds what the helpline put there; gone when Redis came back without its data
# (restarted with no persistence, or flushed), as every queued and delayed job went with it.
KEPT = "sewamitra:redis-kept"
SWEEP_RESULT_TTL = 300


def sweep_if_redis_lost_its_data(connection: redis.Redis) -> bool:
    """A sweep at once when Redis lost its data: it queues again what the database says waits (offers
    past their time, requests, SMS), which would otherwise wait for the scheduler's next sweep, up to
    `dispatch.sweep_interval` later. The scheduler does not see such a restart: redis-py reconnects
    under it. The mover of delayed jobs asks each second; a new Redis (the helpline's first start)
    gets a sweep too, as the scheduler's start gives one."""

    def put() -> None:
        if connection.exists(KEPT):
            return
        log.warning("Redis holds none of the helpline's keys (restarted without its data?): sweeping now")
        with connection.pipeline() as pipe:  # MULTI: the mark only with the sweep queued
            queue(connection, QueueName.DISPATCH).enqueue(JOBS + "sweep", result_ttl=SWEEP_RESULT_TTL, pipeline=pipe)
            pipe.set(KEPT, 1)
            pipe.execute()

    return _attempt(put, "the sweep after Redis lost its data", "the scheduler's next sweep does it")


def each_second(connection: redis.Redis) -> None:
    """What the holder of the delayed jobs' lock does each second, besides moving them."""
    sweep_if_redis_lost_its_data(connection)
    move_expired(connection)
    call_log_writer(connection)


# -- workers ----------------------------------------------------------------------------------------


def reindex_worker(connection: redis.Redis, worker_id: int, *, call_sid: str | None = None) -> bool:
    """Bring a changed worker's dispatch index entries in step; a lost job, the scheduled rebuild does."""
    job_id = f"reindex-{worker_id}-{call_sid}" if call_sid else None
    return _put(
        connection,
        QueueName.DEFAULT,
        "reindex_worker",
        worker_id,
        job_id=job_id,
        then="the next rebuild indexes the worker",
    )


def rebuild_index(connection: redis.Redis) -> bool:
    """Build the whole dispatch index again from the database (after an import)."""
    return _put(
        connection, QueueName.DISPATCH, "rebuild_index", job_id="rebuild-index", then="the scheduled rebuild does it"
    )
