"""What `sewamitra serve` runs: gunicorn's master and its workers in an interpreter started with -OO
(the modules then keep no docstrings, some 6 MB of a worker's peak), in the very process the operator
started, so whatever watches that pid (a service manager, `sewamitra up`) still watches the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from devtools import procfs
from tests.chaos import free_port, helpline_environment, wait_until
from tests.factories import ROOT
from tests.up import SEWAMITRA


@pytest.fixture
def serving(tmp_path: Path, helpline_settings: Settings) -> Iterator[tuple[subprocess.Popen[bytes], list[str]]]:
    """`sewamitra serve` with two workers, as an operator starts it, and the arguments it was given."""
    environ = helpline_environment(helpline_settings, tmp_path / "var")
    environ.pop("PYTHONOPTIMIZE", None)  # an interpreter that starts with -OO has nothing to start again
    command = [*SEWAMITRA, "serve", "--port", str(free_port()), "--workers", "2"]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        yield process, command[1:]  # what follows the interpreter
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()


def test_the_server_and_its_workers_run_without_docstrings_in_the_process_started(
    serving: tuple[subprocess.Popen[bytes], list[str]],
) -> None:
    process, arguments = serving

    def workers() -> list[int]:
        if process.poll() is not None:
            raise AssertionError(f"`sewamitra serve` exited with {process.returncode}")
        forked = procfs.children(process.pid)
        return forked if len(forked) == 2 else []

    forked = wait_until(workers, 60, "gunicorn's two workers")

    assert procfs.command_line(process.pid) == [sys.executable, "-OO", *arguments]
    assert [procfs.command_line(worker) for worker in forked] == [[sys.executable, "-OO", *arguments]] * 2
