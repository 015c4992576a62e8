"""Asynchronous commit is asked for per transaction, and only ever for that transaction; a statement
run on its own commits as it runs, and only on the connection that asked for it."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from devtools.bench import roundtrips
from storage.db import (
    autocommit_session,
    autocommitted,
    commit_without_waiting_for_disk,
    one_connection,
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
