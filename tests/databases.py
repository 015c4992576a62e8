"""PostgreSQL databases for tests, copied from one template the run migrated once. A thread of its
own copies them ahead of the tests that take them, another drops them behind, so that neither the copy
nor the drop (which waits for a checkpoint) is on a test's clock."""

from __future__ import annotations

import queue
import threading
import uuid

import sqlalchemy as sa

from storage.db import create_engine, upgrade

AHEAD = 2  # copies kept ready: a test takes one at a time, the next is copied while it runs


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


def migrated_template(admin: sa.Engine) -> str:
    """A database migrated by Alembic to the newest schema, with nobody left connected to it."""
    name = create_database(admin)
    engine = create_engine(url_of(admin, name))
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # a template must have no one connected to it when it is copied
    return name


class Copies:
    """Copies of `template`, made ahead by one thread and dropped behind by another."""

    def __init__(self, admin_url: str, template: str) -> None:
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.template = template
        self.ready: queue.Queue[str] = queue.Queue()
        self.used: queue.Queue[str | None] = queue.Queue()
        self.wanted = threading.Event()
        self.stopping = False
        self.error: BaseException | None = None
        self.maker = threading.Thread(target=self._make, name="database-copies", daemon=True)
        self.dropper = threading.Thread(target=self._drop, name="database-drops", daemon=True)
        self.maker.start()
        self.dropper.start()

    def take(self) -> str:
        """A fresh copy of the template, for one test."""
        self.wanted.set()
        while True:
            try:
                return self.ready.get(timeout=1)
            except queue.Empty:
                if not self.maker.is_alive():
                    raise RuntimeError("the thread copying test databases stopped") from self.error

    def give_back(self, name: str) -> None:
        """The test is over: its copy is dropped in the background."""
        self.used.put(name)

    def _make(self) -> None:
        try:
            while not self.stopping:
                if self.ready.qsize() < AHEAD:
                    self.ready.put(create_database(self.admin, self.template))
                    continue
                self.wanted.wait()
                self.wanted.clear()
        except BaseException as error:
            self.error = error
            raise

    def _drop(self) -> None:
        while (name := self.used.get()) is not None:
            drop_database(self.admin, name)

    def close(self) -> None:
        """Stop copying; drop every copy made, used or not."""
        self.stopping = True
        self.wanted.set()
        self.maker.join()
        while not self.ready.empty():
            self.used.put(self.ready.get_nowait())
        self.used.put(None)
        self.dropper.join()
        self.admin.dispose()
