"""The scratch services a benchmark builds for itself and takes away afterwards: a fresh PostgreSQL
database, a Redis database emptied before and after, and the helpline's environment pointed at both."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import sqlalchemy as sa

from core.exceptions import SewamitraError

MARKER = "sewamitra:bench:owner"  # the bench that claimed a Redis database: its host and process


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database on the server `admin_url` names, dropped however the run ends."""
    admin = sa.create_engine(with_driver(admin_url), isolation_level="AUTOCOMMIT")
    name = f"sewamitra_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def with_driver(url: str) -> str:
    """postgresql:// means psycopg2 to SQLAlchemy; the helpline ships psycopg 3."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith("postgresql"):
        raise SewamitraError(f"the benchmark needs a PostgreSQL server, not {parsed.drivername}")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def claimed_redis(url: str) -> Iterator[redis.Redis]:
    """The Redis database `url` names, emptied before and after: only if it is empty or a bench's that
    is over. A bench still running there is refused, not emptied under it: its calls would lose their
    state and look like the helpline's errors."""
    connection = redis.Redis.from_url(url)
    try:
        owner = _text(connection.get(MARKER))
        if owner is not None and _running(owner):
            raise SewamitraError(
                f"{url} is in use by another benchmark ({owner}); give this one another Redis database, "
                "or wait for that one to end"
            )
        if owner is None and connection.dbsize():
            raise SewamitraError(f"{url} holds keys the benchmark did not make; give it an empty Redis database")
        connection.flushdb()
        connection.set(MARKER, f"{socket.gethostname()} process {os.getpid()}")
        try:
            yield connection
        finally:
            connection.flushdb()
    finally:
        connection.close()


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _running(owner: str) -> bool:
    """Whether the bench that claimed a database (`host process pid`) runs still. One on another host
    cannot be looked at, so counts as running; a claim of an older bench, which named no process, as over."""
    host, _, pid = owner.partition(" process ")
    if not pid.isdigit():
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, but another user's
        pass
    return True


def helpline_environ(
    database_url: str, redis_url: str, *, twilio_base_url: str, account_sid: str, auth_token: str
) -> dict[str, str]:
    """The helpline's environment (config.yaml and SEWAMITRA_* overrides), pointed at the bench's world
    and at a Twilio that is never the real one."""
    return {
        **os.environ,
        "SEWAMITRA_DATABASE_URL": database_url,
        "SEWAMITRA_REDIS_URL": redis_url,
        "SEWAMITRA_TWILIO__API_BASE_URL": twilio_base_url,
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": auth_token,
    }
