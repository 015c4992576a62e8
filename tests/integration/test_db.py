"""Asynchronous commit is asked for per transaction, and only ever for that transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from storage.db import commit_without_waiting_for_disk, session_scope

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
