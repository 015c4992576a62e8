"""PostgreSQL databases for tests, copied from one template the run migrated once. A thread of its
own keeps copies ready ahead of the tests that take them; behind them it empties each used copy
back to the template's state (every row deleted, every sequence back to 1) for the next test, or
drops it when the test changed its schema: a DROP DATABASE costs more than most tests, emptying
a few milliseconds. It empties each copy over a connection it keeps to that copy: a new backend
would cost PostgreSQL more than the emptying, as it reads the tables' definitions afresh."""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers every table in SQLModel.metadata)
from storage.db import create_engine, upgrade

AHEAD = 2  # copies kept ready: a test takes one at a time, the next is made while it runs
EMPTIED_IN_ORDER = [table.name for table in reversed(SQLModel.metadata.sorted_tables)]  # children first


def create_database(admin: sa.Engine, template: str | None = None) -> str:
    name = f"sewamitra_test_{uuid.uuid4().hex[:12]}"
    copied = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"{copied}'))
    return name


def drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def url_of(admin: sa.Engine, name: str) -> str:
    return admin.url.set(database=name).render_as_string(hide_password=False)


@dataclass(frozen=True)
class Schema:
    """What a copy of the template holds when no test has touched it: these tables and sequences,
    at this revision."""

    tables: frozenset[str]
    sequences: frozenset[str]
    revision: str

    @classmethod
    def of(cls, connection: sa.Connection) -> Schema:
        tables = connection.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        sequences = connection.execute(sa.text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"))
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        return cls(frozenset(tables.scalars()), frozenset(sequences.scalars()), str(revision))


def migrated_template(admin: sa.Engine) -> tuple[str, Schema]:
    """A database migrated by Alembic to the newest schema, with nobody left connected to it."""
    name = create_database(admin)
    engine = create_engine(url_of(admin, name))
    try:
        upgrade(engine)
        with engine.connect() as connection:
            schema = Schema.of(connection)
    finally:
        engine.dispose()  # a template must have no one connected to it when it is copied
    return name, schema


class Copies:
    """Copies of `template` for tests: made ahead, emptied (or dropped) behind, by a thread of their own."""

    def __init__(self, admin_url: str, template: str, schema: Schema) -> None:
        if schema.tables - {"alembic_version"} != set(EMPTIED_IN_ORDER):
            raise RuntimeError(f"the migrated tables {sorted(schema.tables)} are not the models' {EMPTIED_IN_ORDER}")
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.template = template
        self.schema = schema
        # Children first; DELETE, as TRUNCATE takes ten times as long; then every sequence as in the
        # template: the next id is 1.
        self.emptying = "".join(
            [f'DELETE FROM "{table}";' for table in EMPTIED_IN_ORDER]  # noqa: S608 (our own tables)
            + [f"SELECT setval('\"{sequence}\"', 1, false);" for sequence in sorted(schema.sequences)]
        )
        self.ready: queue.Queue[str] = queue.Queue()
        self.used: queue.Queue[str] = queue.Queue()
        self.out: set[str] = set()  # handed to tests and not given back yet
        # One connection kept to each copy made (idle between two emptyings: no transaction, no lock).
        self.kept: dict[str, sa.Engine] = {}
        self.wanted = threading.Event()
        self.stopping = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="database-copies", daemon=True)
        self.thread.start()

    def take(self) -> str:
        """A database at the template's state, for one test alone."""
        self.wanted.set()
        while True:
            try:
                name = self.ready.get(timeout=1)
            except queue.Empty:
                if not self.thread.is_alive():
                    raise RuntimeError("the thread preparing test databases stopped") from self.error
                continue
            self.out.add(name)
            return name

    def give_back(self, name: str) -> None:
        """The test is over: its database (a copy, or any other it made) is emptied or dropped."""
        self.out.discard(name)
        self.used.put(name)
        self.wanted.set()

    def _work(self) -> None:
        try:
            while not self.stopping:
                if not self.used.empty():
                    self._recycle(self.used.get_nowait())
                elif self.ready.qsize() < AHEAD:
                    self.ready.put(create_database(self.admin, self.template))
                else:
                    self.wanted.wait()
                    self.wanted.clear()
        except BaseException as error:
            self.error = error
            raise

    def _recycle(self, name: str) -> None:
        """Empty the database back to the template's state; drop it if its schema is not the template's."""
        if name not in self.kept:  # pinged at each checkout: a test may have ended the kept connection
            self.kept[name] = sa.create_engine(url_of(self.admin, name), pool_size=1, pool_pre_ping=True)
        try:
            with self.kept[name].connect() as connection:
                with self.admin.connect() as admin:  # nobody else may hold a lock on what is emptied
                    admin.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name AND pid NOT IN (pg_backend_pid(), :kept)"
                        ),
                        {"name": name, "kept": connection.connection.dbapi_connection.info.backend_pid},  # type: ignore[union-attr]
                    )
                with connection.begin():
                    connection.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
                    if Schema.of(connection) != self.schema:
                        raise LookupError(f"{name} no longer has the template's schema")
                    # One round trip (a script of statements, sent without parameters), not one per table.
                    connection.connection.dbapi_connection.execute(self.emptying)  # type: ignore[union-attr]
        except (sa.exc.SQLAlchemyError, psycopg.Error, LookupError):
            self._drop(name)
            return
        self.ready.put(name)

    def _drop(self, name: str) -> None:
        kept = self.kept.pop(name, None)
        if kept is not None:
            kept.dispose()
        drop_database(self.admin, name)

    def close(self) -> None:
        """Stop; drop every database made, used or not, and any still out (a test that never gave
        its database back: it is over too)."""
        self.stopping = True
        self.wanted.set()
        self.thread.join()
        for waiting in (self.ready, self.used):
            while not waiting.empty():
                self._drop(waiting.get_nowait())
        for name in sorted(self.out):
            self._drop(name)
        self.out.clear()
        self.admin.dispose()
