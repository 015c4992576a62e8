"""The suite's own databases: every test gets one at the template's state (the newest schema, no
rows, ids from 1), whether a fresh copy or one a previous test used and gave back; a database
whose schema a test changed is dropped, never handed out again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from storage import db
from tests import databases
from tests.factories import add_request, add_worker


@pytest.fixture
def copies(postgres_admin: sa.Engine) -> Iterator[databases.Copies]:
    """A pool of its own, so the test sees every database it hands out."""
    template, schema = databases.migrated_template(postgres_admin)
    pool = databases.Copies(postgres_admin.url.render_as_string(hide_password=False), template, schema)
    yield pool
    pool.close()
    databases.drop_database(postgres_admin, template)


def existing(admin: sa.Engine, name: str) -> bool:
    with admin.connect() as connection:
        found = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
        return found.first() is not None


def test_a_database_given_back_is_handed_out_again_empty_with_ids_from_one(
    copies: databases.Copies, postgres_admin: sa.Engine
) -> None:
    used: set[str] = set()
    rounds = 8
    for _ in range(rounds):
        name = copies.take()
        used.add(name)
        engine = db.create_engine(databases.url_of(postgres_admin, name))
        with engine.connect() as connection:
            assert db.current_revision(engine) == db.head_revision()
            for table in databases.EMPTIED_IN_ORDER:
                assert connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar() == 0, table  # noqa: S608 (our own tables)
        assert (add_worker(engine, "Ramesh Kumar", "+919800000001", 1.0), add_request(engine)) == (1, 1)
        copies.give_back(name)  # its connections still open, as a test's may be
    assert len(used) < rounds  # later tests got databases earlier ones gave back


def test_a_database_whose_schema_changed_is_dropped_not_reused(
    copies: databases.Copies, postgres_admin: sa.Engine
) -> None:
    name = copies.take()
    engine = db.create_engine(databases.url_of(postgres_admin, name))
    db.downgrade(engine, "base")
    engine.dispose()
    copies.give_back(name)
    taken = {copies.take() for _ in range(databases.AHEAD + 1)}
    assert name not in taken
    copies.close()
    assert not existing(postgres_admin, name)


def test_closing_drops_every_database_even_those_never_given_back(
    copies: databases.Copies, postgres_admin: sa.Engine
) -> None:
    """A run's pool is closed at its end: a test stopped before giving its database back (or one
    that kept it) leaves nothing on the server either."""
    kept = {copies.take() for _ in range(databases.AHEAD + 1)}
    given_back = copies.take()
    copies.give_back(given_back)
    copies.close()
    assert not [name for name in {*kept, given_back} if existing(postgres_admin, name)]
