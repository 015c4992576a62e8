"""`sewamitra up` as the end-to-end tests run it: in a data directory of its own, with no service
configured but what the test sets, its output read as it comes (a full pipe would block its
logging), stopped as an operator would (SIGTERM, then for sure), and what it printed shown when the
test failed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.up import free_port
from tests.factories import ROOT

SEWAMITRA = [sys.executable, "-m", "sewamitra", "--config", str(ROOT / "config.yaml")]
STARTS_WITHIN_S = 120
STOPS_WITHIN_S = 30


@dataclass
class Up:
    """A running `sewamitra up`: its process, port, data directory, environment and output so far."""

    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    env: dict[str, str]
    output: list[str]

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running_up(request: pytest.FixtureRequest, *args: str, **settings: str) -> Iterator[Up]:
    """`sewamitra up *args` with the environment's `SEWAMITRA_*`, `TWILIO_*` and `PLIVO_*` left out and
    `settings` (environment names and values) put in; yields once it says it is up."""
    failed_before = request.session.testsfailed
    data_dir = Path(tempfile.mkdtemp(prefix="sm-up-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEWAMITRA_", "TWILIO_", "PLIVO_"))}
    env |= {"SEWAMITRA_DATA_DIR": str(data_dir), **settings}
    process = subprocess.Popen(
        [*SEWAMITRA, "up", *args, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    output: list[str] = []
    threading.Thread(target=read_output, args=(process, output), daemon=True).start()
    try:
        wait_for(lambda: _up_or_gone(process, output), STARTS_WITHIN_S, "the helpline to come up")
        yield Up(process, port, data_dir, env, output)
    finally:
        if process.poll() is None:  # the test did not stop it: stop it as an operator would, then for sure
            process.terminate()
            try:
                process.wait(STOPS_WITHIN_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
        if request.session.testsfailed > failed_before:
            print("--- what `sewamitra up` printed ---\n" + "".join(output))


def get_json_list(url: str) -> list[Any]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return list(json.load(answer))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, shown: Callable[[], str] = str) -> Any:
    """`predicate`'s first true value, asked every half second (an OSError counts as not yet); the
    failure says what `shown` gives then (a process's output so far)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{shown()}".rstrip())


def read_output(process: subprocess.Popen[str], output: list[str]) -> None:
    """Keep `process`'s output as it comes (run in a thread): a full pipe would block its logging."""
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


def _up_or_gone(process: subprocess.Popen[str], output: list[str]) -> bool:
    if process.poll() is not None:
        raise AssertionError("`sewamitra up` exited early:\n" + "".join(output))
    return any("Press Ctrl-C" in line for line in output)
