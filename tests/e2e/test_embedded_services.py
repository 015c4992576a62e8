"""On a machine where nothing answers at the test URLs, the suite starts a PostgreSQL and a Redis of
its own, says so, and leaves neither a process nor a directory behind when it stops. CI runs on the
machine's real services, so this is where the embedded path is proven on every run."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from tests import services
from tests.chaos import free_port


def test_with_nothing_answering_the_run_starts_its_own_postgres_and_redis_and_stops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_port, redis_port = free_port(), free_port()  # nothing listens on either
    monkeypatch.setattr(services, "POSTGRES_URL", f"postgresql+psycopg://postgres@127.0.0.1:{postgres_port}/postgres")
    monkeypatch.setattr(services, "REDIS_URL", f"redis://127.0.0.1:{redis_port}/9")

    run = services.start()
    try:
        assert (run.postgres.origin, run.redis.origin) == ("embedded", "embedded")
        header = run.header()
        assert f"PostgreSQL embedded {run.postgres.url} (nothing answered at 127.0.0.1:{postgres_port})" in header
        assert f"Redis embedded {run.redis.url} (nothing answered at 127.0.0.1:{redis_port})" in header
        engine = sa.create_engine(run.postgres.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:  # a server the suite can make its databases on
            connection.execute(sa.text('CREATE DATABASE "made_here"'))
            version = connection.execute(sa.text("SHOW server_version")).scalar()
            assert version is not None
            assert version.startswith("18.")
        engine.dispose()
        client = redis.Redis.from_url(run.redis.url)
        assert client.ping()
        assert client.set("k", "v")
        client.close()
        servers = list(run.started)
    finally:
        run.stop()

    for server in servers:
        assert server.process is not None
        assert server.process.poll() is not None
        assert not server.directory.exists()
    assert not services.postgres_answers(run.postgres.url)
    assert not services.redis_answers(run.redis.url)
