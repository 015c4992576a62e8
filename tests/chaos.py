"""Real processes the chaos tests break on purpose: a redis-server of our own, a TCP proxy in front
of PostgreSQL that can vanish, and `sewamitra worker` processes to kill. Each is stopped (its whole
process group) when the test ends, whatever happened; each keeps its output in a file that a
failing test shows."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis

from core.settings import Settings
from devtools.embedded_redis import redis_server_binary
from devtools.up import free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *, every: float = 0.1) -> T:
    """The predicate's first true value within `timeout` seconds (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def redis_command(port: int, directory: Path) -> list[str]:
    """A redis-server of a test run's own on 127.0.0.1:`port`, keeping nothing on disk."""
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        "--daemonize",
        "no",
    ]


class Process:
    """A child in a process group of its own, its output kept in `log`."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group: no goodbye, no cleanup, as the OOM killer or a power cut would."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL whatever is left of the group."""
        if self.running:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                assert self.process is not None
                self.process.wait(timeout)
        self.kill()

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)
        if signum == signal.SIGKILL:
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class RedisServer(Process):
    """A redis-server of our own on a free port. Without persistence a restart comes back empty:
    every queued job, call state and index entry is gone, the worst a Redis restart can do (but for
    a dump the test had it SAVE, which it reads back)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__("redis-server", directory / "redis.log")
        self.directory = directory
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *settings: str) -> RedisServer:
        """Start it, with redis-server's `settings` after ours; up once it answers."""
        self.spawn([*redis_command(self.port, self.directory), *settings])
        wait_until(self.ping, 10, "redis-server to answer")
        return self

    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.BusyLoadingError:  # it answers, reading a dump back
            return True
        except redis.RedisError:
            return False
        finally:
            client.close()


class TcpProxy(Process):
    """PostgreSQL as the helpline sees it: through this proxy. Killing it is the database becoming
    unreachable (new connections refused, open ones cut); starting it again brings it back."""

    def __init__(self, directory: Path, target: str = "127.0.0.1:5432") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__("tcp-proxy", directory / "proxy.log")
        self.port = free_port()
        self.target = target

    def start(self) -> TcpProxy:
        self.spawn([sys.executable, self.SCRIPT, "--port", str(self.port), "--to", self.target])
        wait_until(self._accepts, 10, "the proxy to listen")
        return self

    def go_silent(self) -> None:
        """Cut every connection, then accept new ones and answer nothing (a host gone dark)."""
        self.kill()
        self.spawn([sys.executable, self.SCRIPT, "--port", str(self.port), "--blackhole"])
        wait_until(self._accepts, 10, "the silent listener")

    SCRIPT = str(Path(__file__).with_name("tcp_proxy.py"))

    def _accepts(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0


def helpline_environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The environment a helpline process needs to run with these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEWAMITRA_", "TWILIO_"))}
    return env | {
        "SEWAMITRA_DATA_DIR": str(data_dir),
        "SEWAMITRA_DATABASE_URL": settings.sqlalchemy_url,
        "SEWAMITRA_REDIS_URL": str(settings.redis_url),
        "SEWAMITRA_PUBLIC_URL": settings.public_url,
        "SEWAMITRA_TWILIO__API_BASE_URL": str(settings.twilio.api_base_url),
        "SEWAMITRA_DISPATCH__SWEEP_INTERVAL": str(settings.dispatch.sweep_interval),
        "TWILIO_ACCOUNT_SID": str(settings.twilio.account_sid),
        "TWILIO_AUTH_TOKEN": str(settings.twilio.auth_token),
    }


class Helpline(Process):
    """One `sewamitra` command as a process: `worker` (an RQ worker with RQ's scheduler, as in
    production) or `scheduler` (the periodic jobs: sweeps, heartbeats)."""

    def __init__(self, settings: Settings, directory: Path, name: str, command: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(name, directory / f"{name}.log")
        self.settings = settings
        self.directory = directory
        self.command = command

    def start(self) -> Helpline:
        command = [sys.executable, "-m", "sewamitra", "--config", str(ROOT / "config.yaml"), self.command]
        self.spawn(command, helpline_environment(self.settings, self.directory / "var"))
        return self


def outputs(*processes: Process) -> str:
    """What each process said, for a failing test's report."""
    return "\n".join(f"--- {p.name} ({p.log}) ---\n{p.output()[-6000:]}" for p in processes)


class Chaos:
    """The processes one test starts, so that every one of them is stopped when it ends."""

    def __init__(self, directory: Path, postgres: str = "127.0.0.1:5432") -> None:
        self.directory = directory
        self.postgres = postgres  # host:port of the PostgreSQL server a proxy stands in front of
        self.started: list[Process] = []

    def redis(self) -> RedisServer:
        return self._keep(RedisServer(self.directory / f"redis-{len(self.started)}")).start()

    def proxy(self, target: str | None = None) -> TcpProxy:
        return self._keep(TcpProxy(self.directory / f"proxy-{len(self.started)}", target or self.postgres)).start()

    def worker(self, settings: Settings) -> Helpline:
        return self._keep(Helpline(settings, self.directory, f"worker-{len(self.started)}", "worker")).start()

    def scheduler(self, settings: Settings) -> Helpline:
        return self._keep(Helpline(settings, self.directory, f"scheduler-{len(self.started)}", "scheduler")).start()

    def _keep(self, process: P) -> P:
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """The test is over: no need to wait for anyone to finish politely."""
        for process in reversed(self.started):
            process.kill()

    def report(self) -> str:
        return outputs(*self.started)


P = TypeVar("P", bound=Process)
