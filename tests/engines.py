"""One SQLAlchemy dialect and one cache of compiled statements for each kind of database a test
process talks to, shared by every engine the process makes.

SQLAlchemy compiles a statement once per engine: its cache of compiled statements is the engine's,
and keyed by the engine's dialect. The helpline's processes each make one engine, so each compiles a
statement once. The suite gives every test a database of its own, and so engines of its own (its
fixtures', the app's), and every test compiled again every statement it ran: about a third of
the CPU of `tests/integration/test_console.py` and `test_dispatch.py` together, run in one process.

Here an engine made after the first of its kind takes the first's dialect, once that one has been
initialized by its first connection, and the process's cache. Its kind is what the compiled SQL
depends on: the dialect and driver, the server (host and port: its version decides what the
dialect may use), and the options given to the dialect (an isolation level, say). Each engine keeps
its own URL, pool, connections, events and execution options.

A listener of `DialectEvents` (`do_connect`, `do_execute`) is kept on the dialect, and so would
reach every engine of the kind; the helpline and the suite register none (`event.listen` on an
engine's pool or connections is the engine's own).

This reaches into SQLAlchemy (`Engine._compiled_cache`, `Pool._dialect`; pyproject.toml pins
SQLAlchemy). If those names change, `install` does nothing, and each engine compiles for itself as
before."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

# Statements kept compiled for every test of the process: the whole of tests/integration, run in one
# process, compiled 990 for PostgreSQL and 833 for SQLite; an engine of its own keeps 500.
CACHE_SIZE = 2_000

Kind = tuple[Any, ...]
CreateEngine = Callable[..., sa.Engine]
unshared: CreateEngine = sa.create_engine  # SQLAlchemy's own, whatever `install` does later


@dataclass
class _Shared:
    dialect: sa.Dialect
    cache: Any  # SQLAlchemy's LRUCache
    initialized: bool = False


class Sharing:
    """Engines made by `create_engine` share their kind's dialect and compiled statements."""

    def __init__(self, create: CreateEngine = unshared) -> None:
        self._create = create
        self._shared: dict[Kind, _Shared] = {}
        self._lock = threading.Lock()

    def create_engine(self, url: str | URL, *args: Any, **kwargs: Any) -> sa.Engine:
        engine = self._create(url, *args, **kwargs)
        kind = kind_of(engine, kwargs)
        with self._lock:
            shared = self._shared.get(kind)
            if shared is not None and shared.initialized:
                engine.dialect = shared.dialect
                engine.pool._dialect = shared.dialect
                engine._compiled_cache = shared.cache
                return engine
            # The first of its kind, or the first since none of those before has connected: its dialect
            # is shared once its first connection has initialized it (the server's version, what it
            # supports).
            candidate = _Shared(engine.dialect, sa.util.LRUCache(CACHE_SIZE))
            engine._compiled_cache = candidate.cache
            self._shared[kind] = candidate

        def initialized(*_args: Any) -> None:
            candidate.initialized = True  # after SQLAlchemy's own first-connection listener, added before

        sa.event.listen(engine.pool, "connect", initialized, once=True)
        return engine


def install() -> bool:
    """From now on, `sqlalchemy.create_engine` makes engines that share their kind's dialect and
    compiled statements; False when this SQLAlchemy keeps them elsewhere (then nothing changes)."""
    if isinstance(getattr(sa.create_engine, "__self__", None), Sharing):
        return True
    probe = unshared("sqlite://")
    known = hasattr(probe, "_compiled_cache") and hasattr(probe.pool, "_dialect")
    probe.dispose()
    if known:
        sa.create_engine = Sharing().create_engine
    return known


def kind_of(engine: sa.Engine, kwargs: dict[str, Any]) -> Kind:
    """What an engine's compiled SQL depends on: the dialect, the server and the dialect's options."""
    url = engine.url
    dialect_options = sa.util.get_cls_kwargs(type(engine.dialect)) | {"module"}
    options = sorted((name, repr(value)) for name, value in kwargs.items() if name in dialect_options)
    return (type(engine.dialect), url.drivername, url.host, url.port, tuple(sorted(url.query.items())), tuple(options))
