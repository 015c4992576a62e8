"""The database: one engine per process, sessions, and migrations to the newest schema."""

from __future__ import annotations

import contextlib
import functools
import os
import select
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg.pq import ConnStatus
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_MS = 5000
# Seconds to wait for PostgreSQL to answer a new connection. libpq waits for ever by default, so a
# database host gone dark would hold a webhook past Twilio's 15 s; a URL's own connect_timeout wins.
CONNECT_TIMEOUT_S = 5
# A pooled connection whose host goes silent mid-query (no answer, no reset) would wait on TCP for
# many minutes: libpq's keepalives probe an idle wait after 2 s, and whatever was sent (a query, a
# probe) unacknowledged for TCP_USER_TIMEOUT_MS ends the connection with an error. A live server
# acknowledges probes however long its query runs. A URL's own settings win.
TCP_USER_TIMEOUT_MS = 5000
SILENT_HOST = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
}
MIGRATIONS = Path(__file__).with_name("migrations")
# What SQLAlchemy raises when the database cannot be reached (refused, cut, timed out), as opposed
# to a statement it refused.
UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)
PRIVATE_FILE, PRIVATE_DIRECTORY = 0o600, 0o700  # a SQLite database and the directory made for it


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and enforced foreign keys. An error's
    message never carries the statement's parameters (citizens' and workers' numbers) into a log."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        _make_sqlite_file(url)
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    given = sa.engine.make_url(url).query
    defaults = {"connect_timeout": CONNECT_TIMEOUT_S, **SILENT_HOST}
    kwargs["connect_args"] = {**{k: v for k, v in defaults.items() if k not in given}, **kwargs.get("connect_args", {})}
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        sa.event.listen(engine, "checkout", _ended_by_the_server)
    return engine


def _ended_by_the_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has ended is replaced at checkout, without a round trip.

    An idle connection has nothing to read: the server speaks only when asked (the helpline neither
    LISTENs nor leaves a query running). One it ended (pg_terminate_backend, a restart, a failover's
    reset) has its last message and the end of the stream waiting; one whose host went silent has the
    error its keepalives found, SILENT_HOST's 5 s after it went. A poll of the socket, a few µs, sees
    either; SQLAlchemy's `pool_pre_ping` asked the server instead, a round trip (some 75 µs of client CPU,
    and the server's) before every request's first statement. Raising DisconnectionError has the pool
    open a new connection in its place (https://docs.sqlalchemy.org/en/20/core/pooling.html,
    "Disconnect Handling - Pessimistic", and `PoolEvents.checkout`). A connection that ends between this
    poll and its statement fails that statement, as one ending between a ping and the statement did."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:  # not psycopg's
        return
    if pgconn.status != ConnStatus.OK:
        raise sa.exc.DisconnectionError("the connection is closed")
    readable, _, failed = select.select([pgconn.socket], [], [pgconn.socket], 0)
    if readable or failed:
        raise sa.exc.DisconnectionError("the server ended the connection while it waited in the pool")


def _make_sqlite_file(url: str) -> None:
    """The database file, made (or, left by an older version, made again) readable by its owner
    alone: it holds every citizen's number and the password hashes. SQLite gives its -wal and -shm
    files the database file's permissions."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIRECTORY)
    with contextlib.suppress(FileExistsError):  # made by another process this instant: it made it private too
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            file.chmod(PRIVATE_FILE)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def session_scope(engine: sa.Engine) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@dataclass
class _Shared:
    """The connection the `autocommitted` blocks of one request share, once the first checked it out."""

    engine: sa.Engine
    connection: sa.Connection | None = None


_shared: ContextVar[_Shared | None] = ContextVar("sewamitra_shared_connection", default=None)


@contextmanager
def autocommitted(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection on which each statement is its own transaction: no BEGIN and no COMMIT round
    trips around it. For a block of one statement, or of statements each complete on its own (a
    read, an upsert), never for writes that must stand or fall together. Inside `one_connection`,
    every such block on `engine` is given the same connection."""
    shared = _shared.get()
    if shared is None or shared.engine is not engine:
        with engine.connect() as connection:
            _autocommit(connection)
            try:
                yield connection
            finally:
                _transactional(connection)
        return
    if shared.connection is None:
        shared.connection = engine.connect()
    _autocommit(shared.connection)
    try:
        yield shared.connection
    except BaseException:
        shared.connection.rollback()  # the next block finds it usable (or, cut off, reconnecting)
        raise


@contextmanager
def one_connection(engine: sa.Engine) -> Iterator[None]:
    """The `autocommitted` blocks on `engine` inside share one connection, checked out by the first
    and given back at the end: a webhook whose effects each read or write a row pays one checkout
    (and the pool's ping, a round trip) for them all. Transactions (`engine.begin`, `session_scope`)
    still take connections of their own."""
    shared = _Shared(engine)
    token = _shared.set(shared)
    try:
        yield
    finally:
        _shared.reset(token)
        if shared.connection is not None:
            _transactional(shared.connection)
            shared.connection.close()


def _autocommit(connection: sa.Connection) -> None:
    """Each statement on `connection` commits as it runs, from now until `_transactional`.

    On psycopg, its connection is told so itself, at each block. SQLAlchemy's isolation level (an
    execution option) is set on a checkout and reset on its return by machinery of its own: a block
    with no statement took 78 µs that way, 58–66 µs this way (one process, the thread's CPU clock, the
    best of 7 × 1,000, 2026-12-07). And SQLAlchemy does not set it again on a connection it opens in place
    of one cut off (a restart, a failover): inside `one_connection`, the next block's writes were
    rolled back as the connection was given back. SQLite's is set as SQLAlchemy sets it, once (its
    connections are not cut off)."""
    driver = connection.connection.driver_connection  # one cut off is replaced here, not at the statement
    if isinstance(driver, psycopg.Connection):
        if not driver.autocommit:
            driver.autocommit = True
    elif connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.execution_options(isolation_level="AUTOCOMMIT")


def _transactional(connection: sa.Connection) -> None:
    """The connection as the pool's other users expect it, before it is given back: each statement in
    a transaction until a commit. One that cannot be told so (cut off meanwhile) is not given back."""
    if connection.invalidated or connection.closed:
        return
    driver = connection.connection.driver_connection
    if not isinstance(driver, psycopg.Connection) or not driver.autocommit:
        return
    try:
        driver.autocommit = False
    except psycopg.Error as error:
        connection.invalidate(error)


def rows_of(connection: sa.Connection, statement: sa.Executable, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of one statement, as tuples. On PostgreSQL the statement runs on psycopg's own cursor,
    compiled once for it (`_cursor_form`), and its rows are what psycopg read: SQLAlchemy's execution
    around the cursor (its context, the parameters, the result) took a third of the CPU of the call's
    first statement (86 µs, 53 here) and more of a booking's (docs/reliability.md). Its
    `before_cursor_execute` listeners are told, and an error is SQLAlchemy's, a connection cut
    invalidated, as its own execution gives them. For a statement whose rows need no type of
    SQLAlchemy's read back (integers, text, booleans, an Enum stored as its value's text); elsewhere
    (SQLite), SQLAlchemy's rows as tuples. For a statement built once, at import or under a cache: each
    statement it is given is compiled and kept for the life of the process."""
    form = _cursor_form(statement, connection.dialect)
    if form is None:
        return [tuple(row) for row in connection.execute(statement, values)]
    params: dict[str, Any] = form.compiled.construct_params(values)  # type: ignore[assignment]  # a new dict
    for name, process in form.processors:
        params[name] = process(params[name])
    sql = form.sql
    cursor = connection.connection.cursor()
    try:
        for listener in connection.dispatch.before_cursor_execute:
            sql, params = listener(connection, cursor, sql, params, None, False)
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []
    except connection.dialect.loaded_dbapi.Error as error:
        raise _wrapped(connection, error, sql, params, cursor) from error
    finally:
        cursor.close()


@dataclass(frozen=True)
class _CursorForm:
    statement: sa.Executable  # held, so that its id names no other statement while this lives
    compiled: SQLCompiler
    sql: str
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]  # each bind's, where its type has one


_CURSOR_FORMS: dict[tuple[int, str], _CursorForm | None] = {}


def _cursor_form(statement: sa.Executable, dialect: sa.Dialect) -> _CursorForm | None:
    """A statement compiled for psycopg, with its binds' processors (SQLAlchemy's own, from their types);
    None where the statement is left to SQLAlchemy: another database, or binds it rewrites as it runs."""
    if dialect.name != "postgresql":
        return None
    key = (id(statement), dialect.driver)
    if key not in _CURSOR_FORMS:
        assert isinstance(statement, sa.ClauseElement)
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        rewrites = compiled.positional or compiled.escaped_bind_names or compiled.post_compile_params
        processors = [
            (name, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()
        ]
        kept = tuple((name, process) for name, process in processors if process is not None)
        _CURSOR_FORMS[key] = None if rewrites else _CursorForm(statement, compiled, compiled.string, kept)
    return _CURSOR_FORMS[key]


def _wrapped(
    connection: sa.Connection, error: Any, sql: str, params: Mapping[str, Any], cursor: Any
) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy's execution raises it (IntegrityError, OperationalError…), with
    the connection invalidated when the error says it is gone, so the pool connects anew."""
    dialect = connection.dialect
    gone = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    if gone:
        connection.invalidate(error)
    wrapped: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        sql,
        params,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=connection.engine.hide_parameters,
        connection_invalidated=gone,
        dialect=dialect,
    )
    return wrapped


@contextmanager
def autocommit_session(engine: sa.Engine) -> Iterator[Session]:
    """A session over `autocommitted`: each statement it sends commits as it runs, so a session that
    adds one row writes it with one round trip (an INSERT … RETURNING), not three."""
    with autocommitted(engine) as connection, Session(connection, expire_on_commit=False) as session:
        yield session


def any_id(name: str) -> sa.ColumnElement[Any]:
    """PostgreSQL's `= ANY(%(name)s)` for `column == any_id(name)`: the ids bound as one integer array.
    Unlike an expanding IN list, whose text grows with the list (and, past 50 ids or 4 KB, is parsed by
    psycopg anew each time: docs/reliability.md), the statement is one text however many ids it is
    given, parsed once and prepared by the server like any other. PostgreSQL plans an IN list as this."""
    return sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.Integer)))


@dataclass(frozen=True)
class ArrayInsert:
    """A model's rows inserted in one statement, their ids back in their order. On PostgreSQL the rows
    go as one array a column: one text however many rows, which psycopg parses once, where SQLAlchemy's
    one VALUES a row is a new text for each number of rows, parsed anew past 50 parameters or 4 KB
    (docs/reliability.md). Elsewhere (SQLite), SQLAlchemy's INSERT … RETURNING in the rows' order."""

    columns: tuple[str, ...]
    from_arrays: sa.Insert
    in_order: sa.Insert

    @classmethod
    def of(cls, model: type[Any] | sa.Table, columns: tuple[str, ...]) -> ArrayInsert:
        table = model if isinstance(model, sa.Table) else sa.inspect(model).local_table
        arrays = (
            sa.func.unnest(*[sa.bindparam(name, type_=postgresql.ARRAY(table.c[name].type)) for name in columns])
            .table_valued(*columns, with_ordinality="n")
            .render_derived()
        )
        rows = sa.select(*[arrays.c[name] for name in columns]).order_by(arrays.c.n)
        from_arrays = sa.insert(table).from_select(columns, rows).returning(table.c.id)
        return cls(columns, from_arrays, sa.insert(table).returning(table.c.id, sort_by_parameter_order=True))

    def ids(self, connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """The rows inserted (each of `columns`, and no other), and their ids in their order. From
        arrays, SERIAL ids follow the order of the SELECT the rows come from (as SQLAlchemy's
        insertmanyvalues relies on), so sorted they are the rows'."""
        if not rows:
            return []
        if rows[0].keys() != set(self.columns):  # a column given and not inserted, or one missing
            raise ValueError(f"rows of {sorted(rows[0])}, not of this insert's {sorted(self.columns)}")
        if connection.dialect.name != "postgresql":
            return list(connection.execute(self.in_order, list(rows)).scalars())
        arrays = {name: [row[name] for row in rows] for name in self.columns}
        return sorted(row_id for (row_id,) in rows_of(connection, self.from_arrays, arrays))


def insert(dialect: str, model: type[Any] | sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into a model's table that can say ON CONFLICT, in PostgreSQL's or SQLite's words."""
    table = model if isinstance(model, sa.Table) else sa.inspect(model).local_table
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(
    connection: sa.Connection, model: type[Any], values: dict[str, Any], *, key: str, update: tuple[str, ...]
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE the `update` columns of a model's table: one statement,
    on PostgreSQL and SQLite alike, and no race between two first-time inserts of one key."""
    connection.execute(_upsert(connection.dialect.name, sa.inspect(model).local_table, key, update), values)


@functools.lru_cache(maxsize=32)
def _upsert(dialect: str, table: sa.Table, key: str, update: tuple[str, ...]) -> sa.Executable:
    """Built once for each shape (building one takes longer than running it); the values are its parameters."""
    statement = insert(dialect, table)
    return statement.on_conflict_do_update(index_elements=[key], set_={c: statement.excluded[c] for c in update})


def commit_without_waiting_for_disk(session: Session) -> None:
    """PostgreSQL: this transaction's commit returns before its WAL is flushed (asynchronous commit).

    Only for work that can be redone: after a crash of the database server itself, the last fraction
    of a second of such commits may be lost (never half-applied). Dispatch rounds qualify, since the
    sweeper offers a request again if its round was lost; a citizen's request never does.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))


# Alembic is imported where it is used, never at start: a web worker that never migrates is spared
# its memory (some 10 MB of modules).


def alembic_config(engine: sa.Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest by default)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
