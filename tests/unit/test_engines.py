"""The suite's engines share their kind's dialect and compiled statements (tests/engines.py): a
statement compiled for one test's database is not compiled again for the next test's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultExecutionContext

from tests.engines import Sharing, install, kind_of, unshared

QUERY: sa.Select[Any] = sa.select(sa.literal_column("1").label("one"))  # compiled once per dialect and cache


def cache_hit(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        context = connection.execute(QUERY).context
    assert isinstance(context, DefaultExecutionContext)
    return context.cache_hit == context.dialect.CACHE_HIT


def test_a_statement_compiled_for_one_database_is_not_compiled_again_for_the_next(tmp_path: Path) -> None:
    sharing = Sharing()
    first = sharing.create_engine(f"sqlite:///{tmp_path / 'first.db'}")
    assert not cache_hit(first)
    second = sharing.create_engine(f"sqlite:///{tmp_path / 'second.db'}")

    assert second.dialect is first.dialect
    assert cache_hit(second)
    assert second.url.database == str(tmp_path / "second.db")  # its own database, pool and connections
    assert second.pool is not first.pool


def test_until_the_first_engine_has_connected_the_next_keeps_a_dialect_of_its_own(tmp_path: Path) -> None:
    """A dialect is initialized by its engine's first connection (the server's version, what it
    supports): one not yet initialized is not handed on."""
    sharing = Sharing()
    never_connected = sharing.create_engine(f"sqlite:///{tmp_path / 'first.db'}")
    second = sharing.create_engine(f"sqlite:///{tmp_path / 'second.db'}")
    assert second.dialect is not never_connected.dialect

    assert not cache_hit(second)
    third = sharing.create_engine(f"sqlite:///{tmp_path / 'third.db'}")
    assert third.dialect is second.dialect
    assert cache_hit(third)


def test_an_engine_given_other_dialect_options_keeps_its_own(tmp_path: Path) -> None:
    sharing = Sharing()
    first = sharing.create_engine(f"sqlite:///{tmp_path / 'first.db'}")
    cache_hit(first)

    autocommit = sharing.create_engine(f"sqlite:///{tmp_path / 'second.db'}", isolation_level="AUTOCOMMIT")
    assert autocommit.dialect is not first.dialect
    assert not cache_hit(autocommit)


def test_a_kind_is_one_server_and_one_set_of_dialect_options() -> None:
    """The server's version decides what the dialect may use; the database does not matter."""
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/"
    one, two = unshared(url + "one"), unshared(url + "two")
    assert kind_of(one, {}) == kind_of(two, {"pool_pre_ping": True, "hide_parameters": True})
    assert kind_of(one, {}) != kind_of(unshared(url.replace("5432", "5433") + "one"), {})
    assert kind_of(one, {}) != kind_of(unshared(url.replace("127.0.0.1", "db.example") + "one"), {})
    assert kind_of(one, {}) != kind_of(one, {"isolation_level": "AUTOCOMMIT"})
    assert kind_of(one, {}) != kind_of(unshared("sqlite://"), {})


def test_the_suite_runs_with_its_engines_sharing() -> None:
    """conftest installs it; were SQLAlchemy's names to change, each engine would compile for itself."""
    assert install()
    assert isinstance(sa.create_engine.__self__, Sharing)  # type: ignore[attr-defined]
