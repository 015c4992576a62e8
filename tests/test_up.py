"""A new user runs `sewamitra up` on a fresh checkout: everything starts on embedded defaults with
demo data, books a plumber from a simulated call, texts the caller through the local Twilio sandbox,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr.simulator import CallSimulator, HttpTransport
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return dict(json.load(answer))
    except urllib.error.HTTPError as error:
        return dict(json.load(error))


def get_json_list(url: str) -> list:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return list(json.load(answer))


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found |= {child} | descendants(child)
    return found


@pytest.fixture
def helpline() -> Iterator[tuple[subprocess.Popen[str], int, Path, list[str]]]:
    """`sewamitra up` with no Redis and no database configured, in a data directory of its own."""
    data_dir = Path(tempfile.mkdtemp(prefix="sm-up-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEWAMITRA_", "TWILIO_"))}
    env["SEWAMITRA_DATA_DIR"] = str(data_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "sewamitra", "--config", str(ROOT / "config.yaml"), "up", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip
    output: list[str] = []
    try:
        wait_for(lambda: _read_until(process, output, "Press Ctrl-C"), 120, "the helpline to come up")
        yield process, port, data_dir, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def _read_until(process: subprocess.Popen[str], output: list[str], marker: str) -> bool:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line and process.poll() is not None:
        raise AssertionError("`sewamitra up` exited early:\n" + "".join(output))
    output.append(line)
    return marker in line


def test_up_runs_everything_books_a_call_and_stops_cleanly(helpline) -> None:
    process, port, data_dir, output = helpline
    banner = "".join(output)
    assert f"http://127.0.0.1:{port}/twilio/voice" in banner
    password = (data_dir / "console-admin-password").read_text().strip()
    assert f"admin / {password}" in banner

    health = wait_for(
        lambda: (h := get_json(f"http://127.0.0.1:{port}/healthz"))["jobs_last_ran_s_ago"] is not None and h,
        60, "the scheduler's first job to run on a worker",
    )  # fmt: skip
    assert health["status"] == "ok" and health["rq_workers"] == 2 and health["schedulers"] == 1

    engine = sa.create_engine(f"sqlite:///{data_dir / 'sewamitra.db'}")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM worker")).scalar() == 800
        assert connection.execute(sa.text("SELECT count(*) FROM district")).scalar() == 75
    engine.dispose()

    token = (data_dir / "local-twilio-auth-token").read_text().strip()
    public_url = f"http://127.0.0.1:{port}"
    transport = HttpTransport(public_url, public_url, token)
    transcript = CallSimulator(transport, public_url=public_url).run("2,1,1,226001#,1,2")
    assert not transcript.errors, transcript.render(requests=True)
    assert transcript.said("Your request number is:")

    engine = sa.create_engine(f"sqlite:///{data_dir / 'sewamitra.db'}")
    with engine.connect() as connection:
        number = connection.execute(sa.text("SELECT number FROM service_request")).scalar_one()
    engine.dispose()
    sandbox = re.search(r"(http://127\.0\.0\.1:\d+)/_sandbox/messages", banner)
    assert sandbox, banner
    messages = wait_for(lambda: get_json_list(f"{sandbox.group(1)}/_sandbox/messages"), 30, "the SMS to be sent")
    assert [m["to"] for m in messages] == ["+919876543210"] and number in messages[0]["body"]

    children = descendants(process.pid)
    assert len(children) >= 6  # redis, gunicorn (+ its workers), 2 RQ workers, scheduler, Twilio sandbox
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 0
    wait_for(lambda: not any(alive(pid) for pid in children), 10, "every child process to exit")
    assert not (data_dir / "redis" / "redis.sock").exists()
