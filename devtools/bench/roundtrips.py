"""Round trips to PostgreSQL and Redis, counted in this thread while a block runs (another thread's,
a test database being made ready, say, are not this block's).

PostgreSQL: each statement, each BEGIN psycopg sends before the first statement of a transaction,
each COMMIT or ROLLBACK of a transaction that ran one, each pool pre-ping. Redis: each packed send of
a connection (a command, or a whole pipeline). SQLite statements are counted apart: no network. And
PostgreSQL statements psycopg parses anew each time they run: longer than it keeps parsed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, replace
from typing import Any

import sqlalchemy as sa
from redis import connection as redis_connection
from sqlalchemy.engine import default

IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open, so a COMMIT or ROLLBACK sends nothing
# What psycopg keeps parsed (its query's conversion to PostgreSQL's placeholders, in an LRU cache): a
# statement of at most this many bytes and parameters (psycopg._queries.MAX_CACHED_STATEMENT_LENGTH
# and MAX_CACHED_STATEMENT_PARAMS); a longer one it parses again each time it runs.
PARSE_KEPT_BYTES, PARSE_KEPT_PARAMETERS = 4096, 50


@dataclass
class RoundTrips:
    postgres: int = 0
    statements: int = 0  # on any database, SQLite included
    redis: int = 0
    parsed_anew: int = 0  # PostgreSQL statements past what psycopg keeps parsed

    def __add__(self, other: RoundTrips) -> RoundTrips:
        return RoundTrips(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))

    def __sub__(self, other: RoundTrips) -> RoundTrips:
        return RoundTrips(*(mine - theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))

    def copy(self) -> RoundTrips:
        return replace(self)


def _postgres(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("psycopg")


def _in_transaction(dbapi_connection: Any) -> bool:
    return bool(dbapi_connection.info.transaction_status != IDLE)


class _Listeners:
    """What counts: SQLAlchemy's events, and the two methods through which a round trip goes that no
    event reports (the pool's pre-ping, a Redis connection's send)."""

    def __init__(self, trips: RoundTrips) -> None:
        self.trips = trips
        self.thread = threading.get_ident()

    def mine(self) -> bool:
        return threading.get_ident() == self.thread

    def statement(self, _conn: Any, cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if not self.mine():
            return
        self.trips.statements += 1
        dbapi_connection = cursor.connection
        if _postgres(dbapi_connection):
            begins = not dbapi_connection.autocommit and not _in_transaction(dbapi_connection)
            self.trips.postgres += 2 if begins else 1
            self.trips.parsed_anew += _parsed_anew(statement, parameters)

    def ended(self, conn: sa.Connection, *_args: Any) -> None:
        self.reset(conn.connection.dbapi_connection)

    def reset(self, dbapi_connection: Any, *_args: Any) -> None:
        if self.mine() and _postgres(dbapi_connection) and _in_transaction(dbapi_connection):
            self.trips.postgres += 1

    def events(self) -> list[tuple[Any, str, Callable[..., None]]]:
        return [
            (sa.Engine, "before_cursor_execute", self.statement),
            (sa.Engine, "commit", self.ended),
            (sa.Engine, "rollback", self.ended),
            (sa.pool.Pool, "reset", self.reset),
        ]


def _parsed_anew(statement: str, parameters: Any) -> bool:
    """Whether psycopg parses this statement anew: longer, or with more parameters, than it keeps."""
    given = parameters[0] if isinstance(parameters, list) and parameters else parameters
    return len(statement.encode()) > PARSE_KEPT_BYTES or len(given or ()) > PARSE_KEPT_PARAMETERS


@contextmanager
def counted() -> Iterator[RoundTrips]:
    """Count this thread's round trips, on every engine and every Redis connection, while the block runs."""
    trips = RoundTrips()
    listeners = _Listeners(trips)
    ping, send = default.DefaultDialect._do_ping_w_event, redis_connection.AbstractConnection.send_packed_command

    def pinged(self: Any, dbapi_connection: Any) -> bool:
        trips.postgres += 1 if listeners.mine() and _postgres(dbapi_connection) else 0
        return ping(self, dbapi_connection)

    def sent(self: Any, command: Any, check_health: bool = True) -> None:
        trips.redis += 1 if listeners.mine() else 0
        send(self, command, check_health)

    for target, name, listener in listeners.events():
        sa.event.listen(target, name, listener)
    default.DefaultDialect._do_ping_w_event = pinged  # type: ignore[method-assign]
    redis_connection.AbstractConnection.send_packed_command = sent  # type: ignore[method-assign]
    try:
        yield trips
    finally:
        default.DefaultDialect._do_ping_w_event = ping  # type: ignore[method-assign]
        redis_connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        for target, name, listener in listeners.events():
            sa.event.remove(target, name, listener)
