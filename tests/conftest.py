"""Shared fixtures: settings from the real config.yaml, migrated databases on SQLite and
PostgreSQL, and a real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from core.settings import Settings, load_settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch.context import JobContext, install
from storage.db import create_engine, upgrade
from telephony.twilio.rest import TwilioTelephony
from tests.chaos import Chaos, RedisServer

ROOT = Path(__file__).resolve().parent.parent
# The services CI starts; override to point the suite elsewhere.
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def make_settings(tmp_path: Path, **environ: str) -> Settings:
    """Settings from the repository's config.yaml, with `environ` as the environment."""
    env = {"SEWAMITRA_DATA_DIR": str(tmp_path / "var"), **environ}
    return load_settings(ROOT / "config.yaml", env)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"sewamitra_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the helpline runs on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sewamitra.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """A database of each kind, migrated to the newest schema."""
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The real Redis, on a database of its own that is emptied before and after."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://helpline.example.gov.in"


@pytest.fixture
def sandbox() -> Iterator[TwilioSandbox]:
    """The local stand-in for Twilio's REST API: records every SMS and call asked of it."""
    with TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN) as running:
        yield running


@pytest.fixture
def helpline_settings(tmp_path: Path, engine: sa.Engine, redis_client: redis.Redis, sandbox: TwilioSandbox) -> Settings:
    """Settings for the whole helpline on real services: a migrated database of each kind, the
    real Redis, and Twilio's REST API pointed at the sandbox."""
    kwargs = redis_client.connection_pool.connection_kwargs
    return make_settings(
        tmp_path,
        SEWAMITRA_DATABASE_URL=engine.url.render_as_string(hide_password=False),
        SEWAMITRA_REDIS_URL=f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}",
        SEWAMITRA_PUBLIC_URL=PUBLIC_URL,
        SEWAMITRA_SECRET_KEY="s" * 40,
        SEWAMITRA_TWILIO__API_BASE_URL=sandbox.base_url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )


# Property-based tests: modest example counts so the suite stays quick on two cores, no deadline
# (a real database answers in its own time); HYPOTHESIS_PROFILE=thorough runs ten times as many.
hypothesis_settings.register_profile(
    "sewamitra",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.register_profile("thorough", hypothesis_settings.get_profile("sewamitra"), max_examples=250)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "sewamitra"))


@pytest.fixture
def jobs_run(app: Flask) -> Iterator[None]:
    """The RQ workers' side of the test's `app` (its settings and connections, Twilio at the
    sandbox), installed so its jobs can run in the test's process."""
    runtime = app.extensions["sewamitra"]
    install(JobContext(runtime.settings, runtime.engine, runtime.redis, TwilioTelephony(runtime.settings)))
    yield
    install(None)


@pytest.fixture
def chaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chaos]:
    """Real processes a chaos test starts and breaks: all stopped when it ends, whatever happened;
    what they said is printed when the test failed."""
    started = Chaos(tmp_path / "chaos")
    failed_before = request.session.testsfailed
    try:
        yield started
    finally:
        started.stop_all()
        if request.session.testsfailed > failed_before:
            print(started.report())


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[sa.Engine]:
    """A PostgreSQL database of the test's own, migrated."""
    engine = create_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def own_redis(chaos: Chaos) -> RedisServer:
    """A redis-server of the test's own, to kill and start again."""
    return chaos.redis()


@pytest.fixture
def chaos_settings(tmp_path: Path, postgres: sa.Engine, own_redis: RedisServer, sandbox: TwilioSandbox) -> Settings:
    """The helpline on its own PostgreSQL database and redis-server, Twilio's API at the sandbox, and
    the call centre open round the clock (so a failure's apology leads to the agent queue)."""
    loaded = make_settings(
        tmp_path,
        SEWAMITRA_DATABASE_URL=postgres.url.render_as_string(hide_password=False),
        SEWAMITRA_REDIS_URL=own_redis.url,
        SEWAMITRA_PUBLIC_URL=PUBLIC_URL,
        SEWAMITRA_SECRET_KEY="s" * 40,
        SEWAMITRA_TWILIO__API_BASE_URL=sandbox.base_url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    always = {"opens": time(0, 0), "closes": time(23, 59, 59, 999999)}
    return loaded.model_copy(update={"call_centre": loaded.call_centre.model_copy(update=always)})


@pytest.fixture
def installed(settings: Settings, engine: sa.Engine, redis_client: redis.Redis) -> Iterator[JobContext]:
    """The jobs' context, on the test's database and Redis, with the module's `settings`."""
    ctx = JobContext(settings, engine, redis_client, TwilioTelephony(settings))
    install(ctx)
    yield ctx
    install(None)


@pytest.fixture
def job_context(chaos_settings: Settings) -> Iterator[JobContext]:
    """What the scheduler's jobs run with, for the sweeps and index builds a test runs itself."""
    engine = create_engine(chaos_settings.sqlalchemy_url)
    ctx = JobContext(chaos_settings, engine, redis.Redis.from_url(str(chaos_settings.redis_url)),
                     TwilioTelephony(chaos_settings))  # fmt: skip
    install(ctx)
    yield ctx
    install(None)
    ctx.redis.close()
    engine.dispose()
