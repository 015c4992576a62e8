"""The helpline the soak drives: `sewamitra up` itself, as a child process, on a PostgreSQL database of
the soak's own and the embedded Redis `up` keeps in the soak's temporary directory (append-only file,
restarted by `up` when it dies), texting and calling through a Twilio sandbox in the soak's process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.exceptions import SewamitraError
from devtools import procfs
from devtools.bench.calls.servers import stop, tail
from devtools.twilio_sandbox import TwilioSandbox
from devtools.up import free_port
from sewamitra.process import die_with_parent

ACCOUNT_SID = "AC" + "50" * 16  # never a real account
AUTH_TOKEN = "soak-" + secrets.token_hex(16)
HELPLINE_NUMBER = "+18005550100"  # twilio.from_number in config.yaml
READY_TIMEOUT_S = 180.0  # migrations and the demo data (800 workers) on a busy machine
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Timing:
    """The dispatch settings the soak runs `up` with: short ones make a short soak meaningful."""

    offer_timeout_s: int
    sweep_interval_s: int


@dataclass
class Stack:
    """`up`'s process, where it serves and keeps its data, and the sandbox it texts and calls through."""

    process: subprocess.Popen[bytes]
    database_url: str
    port: int
    data_dir: Path
    log: Path
    sandbox: TwilioSandbox
    timing: Timing

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    public_url = base_url  # Twilio signs over the URL it posts to: here, the one `up` serves on

    def children(self, role: str) -> list[int]:
        """`up`'s live children of a role: web (gunicorn's master), worker, scheduler, redis."""
        return [pid for pid in procfs.children(self.process.pid) if _role(pid) == role]

    def web_workers(self) -> list[int]:
        """gunicorn's workers: the children of the web child."""
        return [pid for master in self.children("web") for pid in procfs.children(master)]

    @property
    def redis_directory(self) -> Path:
        return self.data_dir / "redis"

    @property
    def redis_url(self) -> str:
        return f"unix://{self.redis_directory / 'redis.sock'}"

    def health(self) -> dict[str, object] | None:
        """/healthz's answer, or None when it does not answer 200."""
        import json

        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=5) as answer:
                return dict(json.loads(answer.read()))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def up_alive(self) -> bool:
        return self.process.poll() is None


def _role(pid: int) -> str | None:
    args = procfs.command_line(pid)
    if args and os.path.basename(args[0].split(" ", 1)[0]) == "redis-server":  # redis retitles itself
        return "redis"
    for role, word in (("web", "serve"), ("worker", "worker"), ("scheduler", "scheduler")):
        if word in args[2:]:
            return role
    return None


def environ(database_url: str, data_dir: Path, port: int, sandbox: TwilioSandbox, timing: Timing) -> dict[str, str]:
    """`up`'s environment: config.yaml, pointed at the soak's database, directory, sandbox and timing;
    no Redis URL, so `up` runs its embedded Redis with an append-only file."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SEWAMITRA_", "TWILIO_"))}
    return inherited | {
        "SEWAMITRA_DATA_DIR": str(data_dir),
        "SEWAMITRA_DATABASE_URL": database_url,
        "SEWAMITRA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SEWAMITRA_SECRET_KEY": secrets.token_hex(32),
        "SEWAMITRA_TWILIO__API_BASE_URL": sandbox.base_url,
        "SEWAMITRA_DISPATCH__OFFER_TIMEOUT": str(timing.offer_timeout_s),
        "SEWAMITRA_DISPATCH__SWEEP_INTERVAL": str(timing.sweep_interval_s),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }


@contextmanager
def running(config: Path, database_url: str, directory: Path, timing: Timing) -> Iterator[Stack]:
    """Start the sandbox and `up`, wait until every process of `up` is running and /healthz says ok;
    stop both afterwards (SIGTERM to `up`, which stops its children and its Redis)."""
    with TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN) as sandbox:
        port = free_port()
        data_dir = directory / "var"
        log = directory / "up.log"
        command = [sys.executable, "-m", "sewamitra", "--config", str(config), "up", "--port", str(port)]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                env=environ(database_url, data_dir, port, sandbox, timing),
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        stack = Stack(process, database_url, port, data_dir, log, sandbox, timing)
        try:
            await_ready(stack)
            yield stack
        finally:
            stop(process, STOP_TIMEOUT_S)


def await_ready(stack: Stack, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not stack.up_alive():
            raise SewamitraError(f"`sewamitra up` exited with {stack.process.returncode}:\n{tail(stack.log)}")
        if complete(stack) and (stack.health() or {}).get("status") == "ok":
            return
        time.sleep(0.5)
    raise SewamitraError(f"`sewamitra up` was not ready within {timeout:.0f} s:\n{tail(stack.log)}")


def complete(stack: Stack, web_workers: int = 2, rq_workers: int = 2) -> bool:
    """Every process `up` runs is there: Redis, gunicorn with its workers, the RQ workers, the scheduler."""
    return (
        len(stack.children("redis")) == 1
        and len(stack.children("web")) == 1
        and len(stack.web_workers()) >= web_workers
        and len(stack.children("worker")) >= rq_workers
        and len(stack.children("scheduler")) == 1
    )
