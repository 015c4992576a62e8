"""The servers `sewamitra bench calls` measures, each a gunicorn master in a child process under the
settings of `sewamitra serve`: the helpline itself (`sewamitra serve`), and the bare baseline."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.exceptions import SewamitraError
from devtools import procfs
from sewamitra.process import die_with_parent

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    """A running gunicorn: its master's pid, where it listens, and where its output goes."""

    name: str
    pid: int
    base_url: str
    log: Path

    def workers(self) -> list[int]:
        return procfs.children(self.pid)

    def cpu_times(self) -> tuple[float, float]:
        """CPU time of the master and its live workers so far, and the part of it the kernel spent for
        them, from one reading of each."""
        times = [procfs.cpu_times(pid) for pid in [self.pid, *self.workers()]]
        return sum(whole for whole, _system in times), sum(system for _whole, system in times)

    def reset_peaks(self) -> bool:
        return all([procfs.reset_peak_rss(pid) for pid in self.workers()])

    def peaks_kb(self) -> list[int]:
        return [procfs.peak_rss_kb(pid) for pid in self.workers()]

    def niceness(self) -> list[int]:
        """The master's and each live worker's."""
        return [n for n in map(procfs.niceness, [self.pid, *self.workers()]) if n is not None]


def helpline_command(config: Path, port: int, workers: int) -> list[str]:
    """`sewamitra serve`, exactly as an operator runs it."""
    return [
        sys.executable,
        "-m",
        "sewamitra",
        "--config",
        str(config),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def baseline_command(port: int, workers: int, platform: str = "twilio", public_url: str = "") -> list[str]:
    platform_args = ["--platform", platform, "--public-url", public_url] if platform != "twilio" else []
    return [
        sys.executable,
        "-m",
        "devtools.bench.calls.baseline",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        *platform_args,
    ]


@contextmanager
def running(
    name: str,
    command: list[str],
    environ: Mapping[str, str],
    *,
    port: int,
    workers: int,
    ready_path: str,
    log_dir: Path,
    niceness: int = 0,
) -> Iterator[Server]:
    """Start the server, wait until it answers with all its workers up, and stop it afterwards;
    `niceness`: added to the bench's own, for the server and its workers (`started`)."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=dict(environ),
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=functools.partial(started, niceness),
        )
    server = Server(name, process.pid, f"http://{HOST}:{port}", log)
    try:
        _await_ready(process, server, workers, ready_path)
        yield server
    finally:
        stop(process)


def started(niceness: int) -> None:
    """A server's process as it starts (`preexec_fn`): it dies with the bench and, `niceness` above
    the bench's own, gives way to the bench's callers (`--server-niceness`); its workers inherit both."""
    die_with_parent()
    if niceness:
        os.nice(niceness)


def _await_ready(process: subprocess.Popen[bytes], server: Server, workers: int, path: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SewamitraError(f"{server.name} exited with {process.returncode} at start:\n{tail(server.log)}")
        if len(server.workers()) >= workers and _answers(server.base_url + path):
            return
        time.sleep(0.2)
    raise SewamitraError(f"{server.name} did not answer within {READY_TIMEOUT_S:.0f} s:\n{tail(server.log)}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after `timeout` s: gunicorn (and `sewamitra up`) let their workers
    finish what they are doing, then exit."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tail(log: Path, lines: int = 30) -> str:
    """The end of a server's output, for an error message."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def logged_errors(log: Path) -> Counter[str]:
    """The exceptions (last line of each traceback) and gunicorn's critical lines in a server's output."""
    found: Counter[str] = Counter()
    in_traceback = False
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and line and not line.startswith((" ", "\t")):
            found[line[:160]] += 1
            in_traceback = False
        elif "[CRITICAL]" in line:
            found[line.split("[CRITICAL]", 1)[1].strip()[:160]] += 1
    return found
