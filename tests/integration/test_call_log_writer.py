"""The call logs' writer (`dispatch.calllogs`): a status callback's log waits in a Redis list, and the
writer puts what waits in the database, a batch a transaction, one writer at a time; what the
database cannot take yet waits, what it refuses is dropped alone, and an erasure hashes what waits."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlmodel import Session, select

import flows.engine as flows
from core import phones
from dispatch import calllogs, retention
from ivr import calllog
from ivr.callstate import CallState, Replayed
from storage.db import UNREACHABLE, create_engine
from storage.models import Caller, CallLog, Direction, ServiceRequest
from storage.redisdb import direct
from telephony.call import CallTurn
from tests.factories import add_request, make_settings

pytestmark = pytest.mark.both_databases

AT = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
CITIZEN = "+919876543210"


def sid(n: int) -> str:
    return f"CA{n:032d}"


def entry(call_sid: str, status: str = "completed", **values: Any) -> calllogs.Entry:
    """A status callback's log, as `ivr.calllog.entry` makes one."""
    base = {
        "call_sid": call_sid,
        "from_number": CITIZEN,
        "to_number": "+911204567890",
        "status": status,
        "duration_s": 30,
        "hangup_cause": None,
        "direction": Direction.INBOUND,
        "outcome": "no_flow",
        "path": [],
        "language": None,
        "started_at": AT,
        "ended_at": AT if status in calllogs.FINAL else None,
        "request_number": None,
    }
    return calllogs.Entry(base | values, with_session=False)


def logs(engine: sa.Engine) -> dict[str, CallLog]:
    with Session(engine) as session:
        return {log.call_sid: log for log in session.exec(select(CallLog)).all()}


@pytest.fixture
def unreachable() -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    yield client
    client.close()


def test_what_waits_is_written_and_taken_off_the_list(engine: sa.Engine, redis_client: redis.Redis) -> None:
    for n in range(3):
        calllogs.push(redis_client, entry(sid(n), path=["welcome", "language"], language="hi"))
    assert calllogs.waiting(redis_client) == 3
    assert logs(engine) == {}  # the callback's part ends at the push

    assert calllogs.write_due(engine, redis_client) == 3

    assert calllogs.waiting(redis_client) == 0
    written = logs(engine)
    assert sorted(written) == [sid(0), sid(1), sid(2)]
    log = written[sid(1)]
    assert (log.from_number, log.status, log.duration_s, log.direction, log.path, log.language) == (
        CITIZEN,
        "completed",
        30,
        Direction.INBOUND,
        ["welcome", "language"],
        "hi",
    )
    assert log.started_at == log.ended_at == AT.replace(tzinfo=log.started_at.tzinfo)
    assert calllogs.write_due(engine, redis_client) == 0


def test_a_calls_callbacks_in_one_batch_take_effect_in_the_order_they_came(
    engine: sa.Engine, redis_client: redis.Redis
) -> None:
    """A batch's logs go in turns of one log a call, a call's in the order they came, whatever their
    shape: the duration of 'in-progress' is kept by a 'completed' without one, and a late 'ringing'
    undoes nothing. (Run final first, 'in-progress' would change nothing and the duration be lost.)"""
    calllogs.push(redis_client, entry(sid(2), "no-answer", duration_s=None, direction=Direction.OUTBOUND))
    calllogs.push(redis_client, entry(sid(1), "in-progress", duration_s=40, outcome="in_progress"))
    calllogs.push(redis_client, entry(sid(1), "completed", duration_s=None))
    calllogs.push(redis_client, entry(sid(1), "ringing", duration_s=None, outcome="in_progress"))

    assert calllogs.write_due(engine, redis_client) == 4

    first, second = logs(engine)[sid(1)], logs(engine)[sid(2)]
    assert (first.status, first.duration_s, first.outcome) == ("completed", 40, "no_flow")
    assert first.ended_at is not None
    assert (second.status, second.direction) == ("no-answer", Direction.OUTBOUND)


def test_more_than_a_batch_is_written_a_batch_a_transaction(engine: sa.Engine, redis_client: redis.Redis) -> None:
    with redis_client.pipeline() as pipe:
        for n in range(2 * calllogs.BATCH + 1):
            calllogs.push(pipe, entry(sid(n)))
        pipe.execute()

    assert calllogs.write_due(engine, redis_client) == 2 * calllogs.BATCH + 1

    assert len(logs(engine)) == 2 * calllogs.BATCH + 1
    assert calllogs.waiting(redis_client) == 0


def test_with_the_database_out_the_logs_wait_for_the_next_writer(engine: sa.Engine, redis_client: redis.Redis) -> None:
    calllogs.push(redis_client, entry(sid(1)))
    nowhere = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/sewamitra")
    try:
        with pytest.raises(UNREACHABLE):
            calllogs.write_due(nowhere, redis_client)
    finally:
        nowhere.dispose()
    assert calllogs.waiting(redis_client) == 1
    assert redis_client.get(calllogs.LOCK) is None  # given back: the next writer need not wait it out

    assert calllogs.write_due(engine, redis_client) == 1
    assert list(logs(engine)) == [sid(1)]


def test_one_writer_at_a_time(engine: sa.Engine, redis_client: redis.Redis) -> None:
    calllogs.push(redis_client, entry(sid(1)))
    redis_client.set(calllogs.LOCK, "another writer's token", ex=calllogs.LOCK_S)
    assert calllogs.write_due(engine, redis_client) == 0
    assert calllogs.waiting(redis_client) == 1
    assert redis_client.get(calllogs.LOCK) == b"another writer's token"


def test_a_log_the_database_refuses_is_dropped_alone(
    engine: sa.Engine, redis_client: redis.Redis, database_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing a callback pushes should be refused (its fields are cut to fit), but one that is must not
    hold back the logs behind it; nor must an entry that is not one."""
    calllogs.push(redis_client, entry(sid(1)))
    redis_client.rpush(calllogs.DUE, b"not a call log", b'{"values": {"direction": "inbound"}, "with_session": false}')
    refused = entry(sid(2), language="x" * 300, request_number="1" * 300)
    calllogs.push(redis_client, refused)
    calllogs.push(redis_client, entry(sid(3)))

    assert calllogs.write_due(engine, redis_client) == 5

    assert calllogs.waiting(redis_client) == 0
    if database_kind == "postgresql":  # SQLite keeps a string of any length
        assert sorted(logs(engine)) == [sid(1), sid(3)]
        assert any(f"the log of call {sid(2)} was refused" in r.getMessage() for r in caplog.records)
    assert sum(r.levelno == logging.ERROR and "cannot be read" in r.getMessage() for r in caplog.records) == 2


def test_an_erasure_hashes_the_number_in_a_log_still_waiting(
    engine: sa.Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, SEWAMITRA_PRIVACY_KEY="p" * 40)
    with Session(engine) as session, session.begin():
        caller = Caller(phone=CITIZEN, language="hi")
        session.add(caller)
        session.flush()
        caller_id = caller.id or 0
    calllogs.push(redis_client, entry(sid(1)))

    retention.erase_caller(engine, redis_client, settings, caller_id, AT)

    [log] = logs(engine).values()
    assert log.from_number == phones.pseudonym(CITIZEN, retention.key_of(settings))
    assert calllogs.waiting(redis_client) == 0


def test_a_callback_whose_log_redis_refuses_writes_it_itself(engine: sa.Engine, unreachable: redis.Redis) -> None:
    turn = CallTurn(sid(1), CITIZEN, "+911204567890", outbound=False, inbound=True, status="completed", duration="12")
    assert calllog.keep(direct(unreachable), engine, turn, CallState(unreachable, sid(1)).key, AT) is None
    [log] = logs(engine).values()
    assert (log.call_sid, log.status, log.duration_s, log.outcome) == (sid(1), "completed", 12, "no_flow")


def test_a_callbacks_log_goes_with_the_calls_session_as_redis_holds_it(
    engine: sa.Engine, redis_client: redis.Redis
) -> None:
    """A status callback's one round trip: Redis reads the call's flow session as it pushes the log, and
    the writer makes the log's path, language, outcome and request of it. A call with no session (an
    outbound call with no menu) is logged as one with no flow, and changes no path."""
    request_id = add_request(engine)
    with Session(engine) as db:
        number = db.get_one(ServiceRequest, request_id).number
    booked = flows.Session(
        "citizen", "goodbye", flows.Status.ENDED, "hi", {"request_number": number}, {}, 9, 8, ("welcome", "record")
    )
    redis_client.hset(CallState(redis_client, sid(1)).key, "session", json.dumps(booked.to_dict(), ensure_ascii=False))
    room = "sewamitra:room:" + sid(1)
    redis_client.hset(room, "members", "x")
    ended = CallTurn(sid(1), CITIZEN, "+911204567890", outbound=False, inbound=True, status="completed", duration="61")
    unanswered = CallTurn(sid(2), "+911204567890", CITIZEN, outbound=True, inbound=False, status="no-answer")

    assert calllog.keep(
        direct(redis_client), engine, ended, CallState(redis_client, sid(1)).key, AT, None, [("DEL", room)]
    ) == [1]
    assert calllog.keep(direct(redis_client), engine, unanswered, CallState(redis_client, sid(2)).key, AT) == []
    assert not redis_client.exists(room)
    assert logs(engine) == {}  # the callback's part ends at the push
    assert calllogs.write_due(engine, redis_client) == 2

    first, second = logs(engine)[sid(1)], logs(engine)[sid(2)]
    assert (first.status, first.duration_s, first.outcome, first.path, first.language, first.request_id) == (
        "completed",
        61,
        "request_created",
        ["welcome", "record"],
        "hi",
        request_id,
    )
    assert (second.status, second.direction, second.outcome, second.path) == (
        "no-answer",
        Direction.OUTBOUND,
        "no_flow",
        [],
    )


def test_a_replayed_callback_pushes_no_second_log(engine: sa.Engine, redis_client: redis.Redis) -> None:
    """Where the platform's signature has a nonce (Plivo), the callback's first delivery is marked in its
    round trip; a replay finds the mark, and pushes nothing."""
    turn = CallTurn(sid(1), CITIZEN, "+911204567890", outbound=False, inbound=True, status="completed", duration="5")
    key, first_delivery = CallState(redis_client, sid(1)).key, ("sewamitra:replay:n1", 60)
    assert calllog.keep(direct(redis_client), engine, turn, key, AT, first_delivery) == []
    with pytest.raises(Replayed):
        calllog.keep(direct(redis_client), engine, turn, key, AT, first_delivery)
    assert calllogs.waiting(redis_client) == 1
    assert 0 < redis_client.ttl("sewamitra:replay:n1") <= 60
