"""Call logs waiting to be written: a status callback pushes its call's log to a Redis list, and a job
writes what waits in batches, one transaction each.

A call's last status callback is about a tenth of a web process's work on a call, and the call's
only reason to open a database connection after its booking: the log is for supervisors' reports,
and no caller waits on it. Here the callback's share is one RPUSH. The writer runs when an RQ
worker's mover of delayed jobs sees logs waiting (`enqueue.call_log_writer`, at most once a second),
so a log reaches the database a second or two after the call, or when a worker is back.

What can go wrong, and what it costs:
- Redis refuses the push: the callback writes the log itself (`write`), as before.
- The database is out when the writer runs: the logs stay in the list for the next run.
- A log the database refuses (not one that reached it late, which the statement's rule ignores):
  the batch is written a log at a time and that one is dropped, with an error in the log.
- A writer killed mid-batch: its lock runs out and the next writer writes the batch again (each log
  is an upsert, so twice is once).
- Redis loses the list (restarted empty, no persistence): the logs in it are lost, and the report
  undercounts those calls, as it did when a callback could reach neither.

A citizen's erasure writes what waits first (`retention`), so that their number in a log still in
the list is hashed with the rest.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from sqlmodel import col

from storage.db import UNREACHABLE, insert
from storage.models import CallLog, Direction, ServiceRequest
from storage.redisdb import direct

DUE = "sewamitra:calllogs:due"
# The writer's lock: one writer at a time, so that the batch it read is the one it trims. A writer
# killed mid-batch holds it this long; the batch stays in the list for the next.
LOCK = "sewamitra:calllogs:writing"
LOCK_S = 60
BATCH = 500  # logs a transaction
MOST_BATCHES = 20  # a run writes at most this many batches; what is left waits for the next run
# The batch written is trimmed off the list only while the writer still holds the lock.
TRIM = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('ltrim', KEYS[2], tonumber(ARGV[2]), -1)
return 1
"""
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
FINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_DATES = ("started_at", "ended_at")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """A status callback's log: the row's values, and what the callback may change in a log already
    there (a callback with a flow session changes its path; a final one its end)."""

    values: Mapping[str, Any]
    with_session: bool

    @property
    def final(self) -> bool:
        return self.values["status"] in FINAL

    def encoded(self) -> str:
        values = {
            name: value.isoformat() if isinstance(value, datetime) else value for name, value in self.values.items()
        }
        values["direction"] = Direction(values["direction"]).value
        return json.dumps({"values": values, "with_session": self.with_session}, separators=(",", ":"))

    @classmethod
    def decoded(cls, raw: bytes | str) -> Entry:
        data = json.loads(raw)
        values = dict(data["values"])
        for name in _DATES:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        values["direction"] = Direction(values["direction"])
        if not isinstance(values["call_sid"], str) or not isinstance(values["status"], str):
            raise TypeError("a call log names its call and its status")
        return cls(values, bool(data["with_session"]))


def push(connection: redis.Redis, entry: Entry) -> None:
    """The log joins those waiting for the writer; a Redis error is the caller's to handle."""
    direct(connection)("RPUSH", DUE, entry.encoded())


def waiting(connection: redis.Redis) -> int:
    return int(connection.llen(DUE))


def write(engine: sa.Engine, entries: Sequence[Entry]) -> None:
    """The logs, in one transaction; a call's several callbacks take effect in the order they came."""
    if not entries:
        return
    with engine.begin() as connection:
        for turn in _turns(entries):
            shapes: dict[tuple[bool, bool], list[Mapping[str, Any]]] = {}
            for entry in turn:
                shapes.setdefault((entry.with_session, entry.final), []).append(entry.values)
            for (with_session, final), rows in shapes.items():
                connection.execute(statement(connection.dialect.name, with_session, final), rows)


def _turns(entries: Iterable[Entry]) -> Iterator[list[Entry]]:
    """The entries in turns with one log of a call each: the first of each call's, then the second…
    (one multi-row INSERT … ON CONFLICT may not change a row twice)."""
    turns: list[list[Entry]] = []
    seen: dict[str, int] = {}
    for entry in entries:
        place = seen.get(entry.values["call_sid"], 0)
        seen[entry.values["call_sid"]] = place + 1
        if place == len(turns):
            turns.append([])
        turns[place].append(entry)
    yield from turns


def write_due(engine: sa.Engine, connection: redis.Redis) -> int:
    """Write the logs waiting, a batch a transaction; how many. 0 when another writer is at it. A
    database error leaves the batch waiting and is raised, for RQ to show."""
    token = uuid.uuid4().hex
    if not connection.set(LOCK, token, nx=True, ex=LOCK_S):
        return 0
    written = 0
    try:
        for _ in range(MOST_BATCHES):
            raw = connection.lrange(DUE, 0, BATCH - 1)
            if not raw:
                break
            _write_batch(engine, raw)
            if not connection.eval(TRIM, 2, LOCK, DUE, token, len(raw)):
                log.warning("the call logs' writer lost its lock mid-run; the next writes on")
                break
            written += len(raw)
            if len(raw) < BATCH:
                break
    finally:
        connection.eval(RELEASE, 1, LOCK, token)
    return written


def _write_batch(engine: sa.Engine, raw: Sequence[bytes | str]) -> None:
    entries = []
    for item in raw:
        try:
            entries.append(Entry.decoded(item))
        except (ValueError, KeyError, TypeError):
            log.error("a call log that cannot be read was dropped: %r", item[:200])
    try:
        write(engine, entries)
    except UNREACHABLE:
        raise  # the database is out of reach: the batch waits
    except sa.exc.SQLAlchemyError:
        log.exception("a batch of %s call logs was refused; writing them one at a time", len(entries))
        for entry in entries:
            try:
                write(engine, [entry])
            except UNREACHABLE:
                raise
            except sa.exc.SQLAlchemyError:
                log.exception("the log of call %s was refused and dropped", entry.values.get("call_sid"))


@functools.lru_cache(maxsize=8)
def statement(dialect: str, with_session: bool, final: bool) -> sa.Executable:
    """The statement that logs a callback, built once for each shape: what a callback with or without
    a flow session, final or not, may change in a log already there. A late, out-of-order callback
    never undoes a final status."""
    table = CallLog.__table__.c  # type: ignore[attr-defined]
    filed = sa.select(col(ServiceRequest.id)).where(col(ServiceRequest.number) == sa.bindparam("request_number"))
    statement = insert(dialect, CallLog).values(request_id=filed.scalar_subquery())
    updated = [
        "status",
        "outcome",
        *(["path", "language", "request_id"] if with_session else []),
        *(["ended_at"] if final else []),
    ]
    changes: dict[str, Any] = {name: statement.excluded[name] for name in updated}
    changes["duration_s"] = sa.func.coalesce(statement.excluded.duration_s, table.duration_s)
    changes["hangup_cause"] = sa.func.coalesce(statement.excluded.hangup_cause, table.hangup_cause)
    # The final statuses as bound values, not a list that IN expands at each execution: every call's
    # last callback runs this statement.
    final_statuses = [sa.literal(status) for status in sorted(FINAL)]
    still_open = sa.func.coalesce(table.status, "").not_in(final_statuses)
    return statement.on_conflict_do_update(
        index_elements=["call_sid"],
        set_=changes,
        where=sa.or_(still_open, statement.excluded.status.in_(final_statuses)),
    )
