"""Asynchronous commit is asked for per transaction, and only ever for that transaction; a statement
run on its own commits as it runs, and only on the connection that asked for it."""

from __future__ import annotations

import enum
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import _queries as psycopg_queries

from devtools.bench import roundtrips
from storage.db import (
    ArrayInsert,
    autocommit_session,
    autocommitted,
    commit_without_waiting_for_disk,
    one_connection,
    rows_of,
    session_scope,
)

# Both databases: asynchronous commit is a PostgreSQL SET LOCAL that SQLite must skip; SQLite's pragmas are its own.
pytestmark = pytest.mark.both_databases


def test_asynchronous_commit_lasts_one_transaction(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        commit_without_waiting_for_disk(session)
        if engine.dialect.name == "postgresql":
            assert session.execute(sa.text("SHOW synchronous_commit")).scalar() == "off"
        session.execute(sa.text("SELECT 1"))  # SQLite: nothing to change, and nothing breaks
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            assert connection.execute(sa.text("SHOW synchronous_commit")).scalar() == "on"


def test_a_statement_on_an_autocommitted_connection_is_kept_without_a_commit(engine: sa.Engine) -> None:
    with autocommitted(engine) as connection:
        connection.execute(sa.text("CREATE TABLE kept (id INTEGER)"))
        connection.execute(sa.text("INSERT INTO kept VALUES (1)"))
        with engine.connect() as other:  # another connection sees it while this one is still open
            assert other.execute(sa.text("SELECT id FROM kept")).scalars().all() == [1]


def test_a_connection_given_back_by_autocommitted_runs_transactions_again(engine: sa.Engine) -> None:
    """The pool hands the same connection to the next block: a failing transaction there must still
    roll back as a whole, not keep its first statement."""
    with autocommitted(engine) as connection:
        connection.execute(sa.text("CREATE TABLE kept (id INTEGER)"))
    with pytest.raises(sa.exc.DBAPIError):
        _two_inserts_the_second_refused(engine)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM kept")).scalar() == 0


def test_an_autocommit_session_writes_one_row_in_one_round_trip(engine: sa.Engine) -> None:
    with autocommitted(engine) as connection:
        connection.execute(sa.text("CREATE TABLE kept (id INTEGER)"))
    with roundtrips.counted() as trips, autocommit_session(engine) as session:
        session.execute(sa.text("INSERT INTO kept VALUES (1)"))
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM kept")).scalar() == 1
    assert trips.statements == 1
    assert trips.postgres == (1 if engine.dialect.name == "postgresql" else 0)  # the INSERT: no ping before it


def test_the_autocommitted_blocks_of_one_connection_share_it_and_a_refused_statement_spoils_none(
    engine: sa.Engine,
) -> None:
    with autocommitted(engine) as connection:
        connection.execute(sa.text("CREATE TABLE kept (id INTEGER PRIMARY KEY)"))
    with roundtrips.counted() as trips, one_connection(engine):
        with autocommitted(engine) as first:
            first.execute(sa.text("INSERT INTO kept VALUES (1)"))
        with pytest.raises(sa.exc.IntegrityError), autocommitted(engine) as second:
            second.execute(sa.text("INSERT INTO kept VALUES (1)"))
        with autocommit_session(engine) as session:
            session.execute(sa.text("INSERT INTO kept VALUES (2)"))
        assert second is first
        with autocommitted(engine) as third, engine.connect() as other:
            assert third is first
            assert other is not first  # a transaction's connection is its own
            assert other.execute(sa.text("SELECT id FROM kept ORDER BY id")).scalars().all() == [1, 2]
    assert first.closed  # given back at the end
    assert trips.statements == 4
    if engine.dialect.name == "postgresql":  # the four statements, no ping before any
        assert trips.postgres == 4 + 2  # and the other's BEGIN, and its ROLLBACK when it is given back


def test_another_engines_autocommitted_blocks_keep_their_own_connections(engine: sa.Engine) -> None:
    other_engine = sa.create_engine(engine.url)
    try:
        with one_connection(engine), autocommitted(other_engine) as theirs, autocommitted(other_engine) as again:
            assert theirs is not again
    finally:
        other_engine.dispose()


def _two_inserts_the_second_refused(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        session.execute(sa.text("INSERT INTO kept VALUES (1)"))
        session.execute(sa.text("INSERT INTO nowhere VALUES (1)"))


def test_round_trips_are_counted_for_the_counting_thread_only(engine: sa.Engine) -> None:
    """Another thread's statements (the suite's own, making test databases ready) are not the block's:
    counted, they made the one-round-trip test above fail now and then in CI."""

    def elsewhere() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    with roundtrips.counted() as trips:
        other = threading.Thread(target=elsewhere)
        other.start()
        other.join()
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 2"))
    assert trips.statements == 1


def test_statements_psycopg_parses_anew_are_counted(engine: sa.Engine) -> None:
    """psycopg keeps a statement parsed up to 50 parameters and 4 KB, and parses a longer one again
    each time it runs: the bench counts those (on PostgreSQL; SQLite's are not psycopg's)."""

    def selecting(count: int) -> tuple[sa.TextClause, dict[str, int]]:
        return sa.text("SELECT " + ", ".join(f":p{n}" for n in range(count))), {f"p{n}": n for n in range(count)}

    with roundtrips.counted() as trips, engine.connect() as connection:
        connection.execute(*selecting(roundtrips.PARSE_KEPT_PARAMETERS))
        connection.execute(*selecting(roundtrips.PARSE_KEPT_PARAMETERS + 1))
        connection.execute(sa.text("SELECT 1 -- " + "x" * roundtrips.PARSE_KEPT_BYTES))
    assert trips.statements == 3
    assert trips.parsed_anew == (2 if engine.dialect.name == "postgresql" else 0)
    assert (roundtrips.PARSE_KEPT_BYTES, roundtrips.PARSE_KEPT_PARAMETERS) == (
        psycopg_queries.MAX_CACHED_STATEMENT_LENGTH,
        psycopg_queries.MAX_CACHED_STATEMENT_PARAMS,
    )


class Kind(enum.Enum):
    FIRST = "first"
    SECOND = "second"


def _kinds_table() -> tuple[sa.Table, sa.Insert]:
    table = sa.Table(
        "kinds",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.Enum(Kind)),
        sa.Column("detail", sa.JSON),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("name", sa.String),
    )
    names = ("id", "kind", "detail", "at", "name")
    inserted = sa.insert(table).values({name: sa.bindparam(name, type_=table.c[name].type) for name in names})
    return table, inserted.returning(table.c.id, table.c.name)


def test_a_statements_rows_are_sqlalchemys_and_its_binds_go_through_their_types(engine: sa.Engine) -> None:
    """On PostgreSQL `rows_of` runs the statement on psycopg's own cursor: each bind is processed by its
    type as SQLAlchemy's execution processes it (an Enum by its name, JSON dumped), and the rows read
    are the same."""
    table, insert = _kinds_table()
    at = datetime(2026, 12, 6, 21, 30, tzinfo=UTC)
    with autocommitted(engine) as connection:
        table.create(connection)
        ours = rows_of(
            connection, insert, {"id": 1, "kind": Kind.SECOND, "detail": {"path": ["1", "2"]}, "at": at, "name": "ह"}
        )
        sqlalchemys = connection.execute(
            insert, {"id": 2, "kind": Kind.SECOND, "detail": {"path": ["1", "2"]}, "at": at, "name": "ह"}
        ).all()
        assert ours == [(1, "ह")]
        assert [tuple(row) for row in sqlalchemys] == [(2, "ह")]
        stored = connection.execute(sa.select(table).order_by(table.c.id)).all()
        assert tuple(stored[0])[1:] == tuple(stored[1])[1:]  # each column stored alike
        assert tuple(stored[0])[1:3] == (Kind.SECOND, {"path": ["1", "2"]})
        if engine.dialect.name == "postgresql":  # stored as SQLAlchemy stores it: the enum's name
            kinds = connection.execute(sa.text("SELECT kind::text FROM kinds")).scalars().all()
            assert kinds == ["SECOND", "SECOND"]
        assert rows_of(connection, sa.select(table.c.id).where(table.c.id > sa.bindparam("above")), {"above": 5}) == []


def test_a_statements_listeners_are_told_and_its_round_trip_counted(engine: sa.Engine) -> None:
    table, insert = _kinds_table()
    with autocommitted(engine) as connection:
        table.create(connection)
    with roundtrips.counted() as trips, autocommitted(engine) as connection:
        rows_of(connection, insert, {"id": 1, "kind": Kind.FIRST, "detail": None, "at": None, "name": None})
    assert trips.statements == 1
    assert trips.postgres == (1 if engine.dialect.name == "postgresql" else 0)


def test_a_statement_refused_raises_sqlalchemys_error_and_spoils_nothing(engine: sa.Engine) -> None:
    table, insert = _kinds_table()
    row = {"id": 1, "kind": Kind.FIRST, "detail": None, "at": None, "name": None}
    with one_connection(engine):
        with autocommitted(engine) as connection:
            table.create(connection)
            rows_of(connection, insert, row)
        with pytest.raises(sa.exc.IntegrityError), autocommitted(engine) as connection:
            rows_of(connection, insert, row)
        with autocommitted(engine) as connection:
            assert rows_of(connection, insert, {**row, "id": 2}) == [(2, None)]


def test_a_connection_cut_under_a_statement_is_sqlalchemys_error_and_the_next_gets_another(postgres: sa.Engine) -> None:
    """The server ends the connection as the statement is sent (an administrator, a failover): the error
    is SQLAlchemy's OperationalError and the connection is invalidated, so the request's next block, on
    the connection it shares, connects anew."""
    admin = sa.create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    cut: list[int] = []

    @sa.event.listens_for(postgres, "before_cursor_execute")
    def end_it(_connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not cut and statement.startswith("SELECT pg_backend_pid"):
            cut.append(cursor.connection.info.backend_pid)
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": cut[0]})

    pid = sa.select(sa.func.pg_backend_pid().label("pid"), sa.bindparam("n", type_=sa.Integer))
    try:
        with one_connection(postgres):
            with pytest.raises(sa.exc.OperationalError) as refused, autocommitted(postgres) as connection:
                rows_of(connection, pid, {"n": 1})
            assert refused.value.connection_invalidated
            with autocommitted(postgres) as connection:
                [(again, n)] = rows_of(connection, pid, {"n": 2})
        assert (again != cut[0], n) == (True, 2)
    finally:
        sa.event.remove(postgres, "before_cursor_execute", end_it)
        admin.dispose()


def test_a_write_after_a_connection_was_cut_is_kept(postgres: sa.Engine) -> None:
    """A request's shared connection is ended by the server (a restart, a failover) and the request
    goes on to write: the connection opened in its place commits each statement as it runs too, so
    the write is not rolled back when the connection is given back."""
    admin = sa.create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    try:
        with autocommitted(postgres) as connection:
            connection.execute(sa.text("CREATE TABLE kept (id INTEGER)"))
        with one_connection(postgres):
            with autocommitted(postgres) as connection:
                cut = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": cut})
            with pytest.raises(sa.exc.OperationalError), autocommitted(postgres) as connection:
                connection.execute(sa.text("SELECT 1"))
            with autocommitted(postgres) as connection:
                connection.execute(sa.text("INSERT INTO kept VALUES (1)"))
        with postgres.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM kept")).scalar() == 1
            # and the pool's connections run transactions again: this one's two statements are one
            with pytest.raises(sa.exc.DBAPIError):
                _two_inserts_the_second_refused(postgres)
            assert connection.execute(sa.text("SELECT count(*) FROM kept")).scalar() == 1
    finally:
        admin.dispose()


def test_rows_inserted_at_once_get_their_ids_in_order_and_a_column_not_inserted_is_refused(engine: sa.Engine) -> None:
    notes = sa.Table(
        "array_insert_note", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.Text)
    )
    notes.create(engine)
    insert = ArrayInsert.of(notes, ("text",))
    try:
        with engine.begin() as connection:
            ids = insert.ids(connection, [{"text": f"note {n}"} for n in range(30)])
            read = {row_id: text for row_id, text in connection.execute(sa.select(notes.c.id, notes.c.text))}

            assert [read[row_id] for row_id in ids] == [f"note {n}" for n in range(30)]
            assert insert.ids(connection, []) == []
            with pytest.raises(ValueError, match="not of this insert"):
                insert.ids(connection, [{"text": "kept", "id": 7}])
    finally:
        notes.drop(engine)
