"""Call logs waiting to be written: a status callback pushes its call's log to a Redis list, and a job
writes what waits in batches, one transaction each.

A call's last status callback is about a tenth of a web process's work on a call, and the call's
only reason to open a database connection after its booking: the log is for supervisors' reports,
and no caller waits on it. Here the callback's share is one script in its one round trip to Redis
(`push_with_session`): the log's head pushed with the call's flow session as Redis holds it, of which
the writer makes the log's path, language and outcome. The writer runs when an RQ
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
from storage.redisdb import Direct, Lua, direct, with_first_delivery

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
# A status callback's log, pushed with its call's flow session as Redis holds it, in the callback's one
# round trip: the log's head (what the callback itself says), a newline (JSON has none), then the
# session (nothing when the call has none); the log's fields that come of the session are the
# writer's to make (`from_session`). With a third key, the request's first delivery is marked first
# (a replay's key is there already: 0, and nothing pushed).
PUSH_WITH_SESSION = Lua("""
if KEYS[3] and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then return 0 end
local session = redis.call('HGET', KEYS[1], 'session')
redis.call('RPUSH', KEYS[2], ARGV[1] .. '\\n' .. (session or ''))
return 1
""")

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
        """A log as `push` pushed it, or as `push_with_session` did: its head, then its session."""
        text = raw.decode() if isinstance(raw, bytes) else raw
        head, with_session_after, session = text.partition("\n")
        data = json.loads(head)
        values = dict(data["values"])
        for name in _DATES:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        values["direction"] = Direction(values["direction"])
        if not isinstance(values["call_sid"], str) or not isinstance(values["status"], str):
            raise TypeError("a call log names its call and its status")
        if not with_session_after:
            return cls(values, bool(data["with_session"]))
        flow_session = json.loads(session) if session else None
        if flow_session is not None and not isinstance(flow_session, dict):
            raise TypeError("a call's flow session is an object")
        return cls(values | from_session(flow_session, values["status"]), flow_session is not None)


def outcome(path: Iterable[str], variables: Mapping[str, Any], flow_status: str | None, call_status: str) -> str:
    """What the call came to, in the words a supervisor's report uses, from its flow session's path,
    variables and status (None: the call has no session)."""
    if flow_status is None:
        return "no_flow" if call_status in FINAL else "in_progress"
    visited = set(path)
    if variables.get("request_number"):
        return "request_created"
    if "record_callback" in visited:
        return "callback_requested"
    if "agent_queue" in visited:
        return "agent_queue"
    if visited & {"read_requests", "find_request"}:
        return "tracked"
    return "ended_in_menu" if flow_status == "ended" else "abandoned"


def from_session(session: Mapping[str, Any] | None, call_status: str) -> dict[str, Any]:
    """A log's fields that come of the call's flow session, in its stored form (`Session.to_dict`)."""
    if session is None:
        return {"outcome": outcome((), {}, None, call_status), "path": [], "language": None, "request_number": None}
    variables = session.get("vars") or {}
    number = variables.get("request_number")  # the request the call filed
    return {
        "outcome": outcome(session["path"], variables, session["status"], call_status),
        "path": list(session["path"]),
        "language": session["language"],
        "request_number": number if isinstance(number, str) else None,
    }


def push(connection: redis.Redis, entry: Entry) -> None:
    """The log joins those waiting for the writer; a Redis error is the caller's to handle."""
    direct(connection)("RPUSH", DUE, entry.encoded())


def head(values: Mapping[str, Any]) -> str:
    """What a status callback says of its call (`values`: a log's own, less `from_session`'s), for
    `push_with_session`."""
    return Entry(values, with_session=False).encoded()


def push_with_session(
    commands: Direct,
    state_key: str,
    values: Mapping[str, Any],
    first_delivery: tuple[str, int] | None = None,
    also: Sequence[Sequence[Any]] = (),
) -> tuple[bool, list[Any]]:
    """The log joins those waiting for the writer with the call's flow session, stored under
    `state_key`, read by Redis as it pushes, and `also`'s commands are sent in the same round trip:
    whether the log was pushed (False: `first_delivery` was marked already, a replay), and their
    answers. A Redis error is the caller's to handle."""
    keys, args = with_first_delivery([state_key, DUE], [head(values)], first_delivery)
    pushed, answers = commands.run_with(PUSH_WITH_SESSION, keys, args, also)
    return bool(pushed), answers


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
