"""Shared fixtures: the run's services (configured, or embedded when nothing answers), databases
cloned from one migrated template per run, a real Redis, the Twilio sandbox, and the app."""

from __future__ import annotations

import gc
import os
import shutil
import signal
from collections.abc import Iterator
from datetime import time
from pathlib import Path
from types import FrameType

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from core.clock import SYSTEM, Clock
from core.settings import Settings
from devtools.plivo_sandbox import PlivoSandbox
from devtools.twilio_sandbox import TwilioSandbox
from dispatch.context import JobContext, install
from sewamitra.app import create_app
from storage.db import create_engine, upgrade
from telephony import telephony
from tests import databases, engines, rewritten, services
from tests.chaos import Chaos, RedisServer
from tests.factories import ACCOUNT_SID, AUTH_TOKEN, PLATFORMS, PLIVO_AUTH_ID, PUBLIC_URL, make_settings

RUN: services.Services | None = None


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A process of the suite collects its youngest objects after 10,000 allocations, not CPython's 700: a
# test's objects mostly die young, by their references, and fewer live long enough to reach the oldest
# generation, each collection of which walks everything the process holds. Measured when every
# test's engine still had a SQLAlchemy dialect of its own, which the mappers' caches of compiled
# statements kept (they share one now: tests/engines.py), three modules in one process
# (tests/integration/test_dispatch, test_console, test_escalation_ladder): 23 full collections, 7.2 s
# of the garbage collector's CPU in 33.6 s; then 6, 2.7 s in 28.8 s.
GC_YOUNGEST = 10_000


def pytest_configure(config: pytest.Config) -> None:
    gc.set_threshold(GC_YOUNGEST, *gc.get_threshold()[1:])
    engines.install()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the process holds once every test is collected (the modules, the tests, their fixtures and
    strategies) lives to the end of the run: frozen out of the collector's sight (`gc.freeze`), as the
    helpline's own processes freeze what they load at start (`sewamitra.process.settle`), so the
    oldest generation's collections, and the five pytest makes at the end of a run, walk only what
    the tests made. Four integration modules in one process (test_dispatch, test_console,
    test_helpline_call, test_escalation_ladder), alternating: 25.73 and 25.20 user CPU-s, then 24.09
    and 23.92 frozen."""
    gc.freeze()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before anything else (and before the header is printed): the services this run uses."""
    global RUN
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # a TERM stops the run as Ctrl-C does: cleanly
        signal.signal(signal.SIGTERM, _interrupted)
    worker = getattr(session.config, "workerinput", None)
    if worker is not None:  # a pytest-xdist worker: the controller's services, a Redis database of its own
        RUN = services.joined(int(worker["workerid"].removeprefix("gw")))
        return
    split = getattr(session.config.option, "dist", "no") != "no"  # xdist starts the workers after this hook
    if split:
        rewritten.ahead(session.config)
    RUN = services.start()
    if split:
        services.share(RUN)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and session.config.get_verbosity() < 0:  # -q prints no header: say it anyway
        reporter.write_line(RUN.header())


def pytest_report_header(config: pytest.Config) -> str:
    return run().header()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Whatever happened (failures, Ctrl-C, an error in a fixture): embedded services stop here."""
    if RUN is not None:
        RUN.stop()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests are never skipped in silence: without a Chromium the run stops before it starts."""
    if run().chromium is None and any("chromium" in getattr(item, "fixturenames", ()) for item in items):
        pytest.exit(services.INSTALL_CHROMIUM, returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`both_databases`: the test runs on SQLite and PostgreSQL; any other runs on PostgreSQL only.

    Kept on both, where the SQL differs by dialect (each says why where it is marked): the
    migrations (test_migrations), asynchronous commit and SQLite's pragmas (test_db), row locks and
    rating averages (test_dispatch), the caller and call-log upserts (test_helpline_call,
    test_voice_webhook), the dashboard's date windows (test_console_dashboard) and the SLA filter's
    timestamp arithmetic (one test of test_console). The rest use SQL both dialects read alike.

    `both_platforms`: the test runs on Twilio and on Plivo (its `telephony_platform`); any other on
    Twilio only.

    Marked both ways, a test runs in three pairs, not four: SQLite on Twilio, PostgreSQL on each
    platform. The dialect decides the SQL and the platform the webhooks and the REST calls; the SQL
    is the same whichever platform asked for it, so SQLite on Plivo proved nothing the other three
    do not."""
    marked = metafunc.definition.get_closest_marker
    dialects = "database_kind" in metafunc.fixturenames and marked("both_databases") is not None
    platforms = (
        "telephony_platform" in metafunc.fixturenames
        and marked("both_platforms") is not None
        # a test of the module may name its platform itself
        and not any("telephony_platform" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    )
    if dialects and platforms:
        pairs = [("sqlite", PLATFORMS[0])] + [("postgresql", platform) for platform in PLATFORMS]
        metafunc.parametrize(("database_kind", "telephony_platform"), pairs)
    elif dialects:
        metafunc.parametrize("database_kind", ["sqlite", "postgresql"])
    elif platforms:
        metafunc.parametrize("telephony_platform", PLATFORMS)


@pytest.fixture(autouse=True)
def signals_given_back() -> Iterator[None]:
    """RQ's in-process workers take SIGINT and SIGTERM for themselves: after each test they are the
    run's again, so that Ctrl-C stops the run (and its embedded services) and not one RQ job."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    # RQ answers a first signal by finishing its job and arming a "cold shutdown" handler for the next.
    asked_to_stop = getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "request_force_stop"
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    if asked_to_stop:
        raise KeyboardInterrupt("signalled while an RQ job ran")


def run() -> services.Services:
    assert RUN is not None, "the services are chosen at session start"
    return RUN


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server of this run (its `postgres` database): configured or embedded."""
    return run().postgres.url


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis database of this run: configured or embedded."""
    return run().redis.url


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium the browser tests drive: Debian's headless shell or Chromium, else Playwright's own."""
    found = run().chromium
    assert found is not None, services.INSTALL_CHROMIUM
    return found.url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def postgres_admin(postgres_server_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_copies(postgres_admin: sa.Engine) -> Iterator[databases.Copies]:
    """One PostgreSQL database per run migrated by Alembic to the newest schema; each test gets a
    database of its own at that state (a copy, CREATE DATABASE ... TEMPLATE, or one emptied back to
    it): the same schema and no rows, at a fraction of the cost of migrating."""
    template, schema = databases.migrated_template(postgres_admin)
    copies = databases.Copies(postgres_admin.url.render_as_string(hide_password=False), template, schema)
    yield copies
    copies.close()
    databases.drop_database(postgres_admin, template)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file per run migrated by Alembic; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "sewamitra.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the one file
    engine.dispose()
    return path


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine, postgres_copies: databases.Copies) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards (in the background)."""
    name = databases.create_database(postgres_admin)
    yield databases.url_of(postgres_admin, name)
    postgres_copies.give_back(name)


@pytest.fixture
def migrated_postgres_url(postgres_admin: sa.Engine, postgres_copies: databases.Copies) -> Iterator[str]:
    """A PostgreSQL database of the test's own at the newest schema, dropped afterwards."""
    name = postgres_copies.take()
    yield databases.url_of(postgres_admin, name)
    postgres_copies.give_back(name)


@pytest.fixture
def database_kind() -> str:
    """PostgreSQL, the production database; `both_databases` tests are parametrized over SQLite too."""
    return "postgresql"


@pytest.fixture
def database_url(database_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database of the test's own, migrated to the newest schema."""
    if database_kind == "sqlite":
        path = tmp_path / "sewamitra.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("migrated_postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """The test's database, migrated to the newest schema."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_client(redis_server_url: str) -> Iterator[redis.Redis]:
    """The real Redis, on a database of its own that is emptied before and after."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def telephony_platform() -> str:
    """The platform the test's helpline runs on; a test marked `both_platforms` runs on each."""
    return "twilio"


@pytest.fixture
def sandbox(telephony_platform: str) -> Iterator[TwilioSandbox]:
    """The local stand-in for the platform's REST API (Twilio's, or Plivo's): records every SMS and
    call asked of it."""
    local = PlivoSandbox(PLIVO_AUTH_ID, AUTH_TOKEN) if telephony_platform == "plivo" else None
    with local or TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN) as running:
        yield running


def platform_environ(platform: str, sandbox: TwilioSandbox) -> dict[str, str]:
    """The environment of a helpline on `platform`, its REST API at the sandbox."""
    if platform == "plivo":
        return {
            "SEWAMITRA_TELEPHONY__PLATFORM": "plivo",
            "SEWAMITRA_PLIVO__API_BASE_URL": sandbox.base_url,
            "PLIVO_AUTH_ID": PLIVO_AUTH_ID,
            "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        }
    return {
        "SEWAMITRA_TWILIO__API_BASE_URL": sandbox.base_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }


@pytest.fixture
def helpline_settings(
    tmp_path: Path, engine: sa.Engine, redis_client: redis.Redis, sandbox: TwilioSandbox, telephony_platform: str
) -> Settings:
    """Settings for the whole helpline on real services: a migrated database of each kind, the
    real Redis, and the platform's REST API pointed at the sandbox."""
    kwargs = redis_client.connection_pool.connection_kwargs
    return make_settings(
        tmp_path,
        SEWAMITRA_DATABASE_URL=engine.url.render_as_string(hide_password=False),
        SEWAMITRA_REDIS_URL=f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}",
        SEWAMITRA_PUBLIC_URL=PUBLIC_URL,
        SEWAMITRA_SECRET_KEY="s" * 40,
        SEWAMITRA_PRIVACY_KEY="p" * 40,
        **platform_environ(telephony_platform, sandbox),
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
    install(JobContext(runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings)))
    yield
    install(None)


@pytest.fixture
def chaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chaos]:
    """Real processes a chaos test starts and breaks: all stopped when it ends, whatever happened;
    what they said is printed when the test failed. Its proxy stands in front of the run's PostgreSQL."""
    server = sa.engine.make_url(run().postgres.url)
    started = Chaos(tmp_path / "chaos", postgres=f"{server.host}:{server.port or 5432}")
    failed_before = request.session.testsfailed
    try:
        yield started
    finally:
        started.stop_all()
        if request.session.testsfailed > failed_before:
            print(started.report())


@pytest.fixture
def postgres(migrated_postgres_url: str) -> Iterator[sa.Engine]:
    """A PostgreSQL database of the test's own, migrated."""
    engine = create_engine(migrated_postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def own_redis(chaos: Chaos) -> RedisServer:
    """A redis-server of the test's own, to kill and start again."""
    return chaos.redis()


@pytest.fixture
def chaos_settings(
    tmp_path: Path, postgres: sa.Engine, own_redis: RedisServer, sandbox: TwilioSandbox, telephony_platform: str
) -> Settings:
    """The helpline on its own PostgreSQL database and redis-server, the platform's API at the sandbox,
    and the call centre open round the clock (so a failure's apology leads to the agent queue)."""
    loaded = make_settings(
        tmp_path,
        SEWAMITRA_DATABASE_URL=postgres.url.render_as_string(hide_password=False),
        SEWAMITRA_REDIS_URL=own_redis.url,
        SEWAMITRA_PUBLIC_URL=PUBLIC_URL,
        SEWAMITRA_SECRET_KEY="s" * 40,
        **platform_environ(telephony_platform, sandbox),
    )
    always = {"opens": time(0, 0), "closes": time(23, 59, 59, 999999)}
    return loaded.model_copy(update={"call_centre": loaded.call_centre.model_copy(update=always)})


@pytest.fixture
def installed(settings: Settings, engine: sa.Engine, redis_client: redis.Redis) -> Iterator[JobContext]:
    """The jobs' context, on the test's database and Redis, with the module's `settings`."""
    ctx = JobContext(settings, engine, redis_client, telephony(settings))
    install(ctx)
    yield ctx
    install(None)


@pytest.fixture
def job_context(chaos_settings: Settings) -> Iterator[JobContext]:
    """What the scheduler's jobs run with, for the sweeps and index builds a test runs itself."""
    engine = create_engine(chaos_settings.sqlalchemy_url)
    ctx = JobContext(
        chaos_settings, engine, redis.Redis.from_url(str(chaos_settings.redis_url)), telephony(chaos_settings)
    )
    install(ctx)
    yield ctx
    install(None)
    ctx.redis.close()
    engine.dispose()


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    """What the test's `app` runs with; a module overrides this fixture to change it."""
    return helpline_settings


@pytest.fixture
def clock() -> Clock:
    """The clock the test's `app` reads; a module freezes it by overriding this fixture with a
    `FrozenClock`."""
    return SYSTEM


@pytest.fixture
def app(app_settings: Settings, clock: Clock) -> Iterator[Flask]:
    """The helpline's web app on the test's services, by the test's clock; its database connections
    closed at the end."""
    built = create_app(app_settings, clock)
    yield built
    built.extensions["sewamitra"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
