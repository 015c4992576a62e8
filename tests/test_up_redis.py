"""`sewamitra up` keeps its embedded Redis running: SIGKILLed, it is started again from its AOF, and
the helpline comes back to health with its RQ workers registered. The whole of `up`, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.test_up import alive, get_json, helpline, rq_worker_names, wait_for

pytestmark = pytest.mark.slow
__all__ = ["helpline"]  # the fixture, shared with test_up


def test_up_starts_its_embedded_redis_again_when_it_dies_and_keeps_its_data(
    helpline: tuple[subprocess.Popen[str], int, Path, list[str]],
) -> None:
    process, port, data_dir, output = helpline
    socket_path = str(data_dir / "redis" / "redis.sock")
    before = redis.Redis(unix_socket_path=socket_path, socket_timeout=5)
    before.set("sewamitra:test:kept", "yes")
    before.close()
    time.sleep(1.5)  # the AOF is written to disk every second (appendfsync everysec)
    first = int((data_dir / "redis" / "redis.pid").read_text())
    wait_for(lambda: rq_worker_names(data_dir), 60, "the RQ workers to register")

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), 10, "the first redis-server to be gone")

    wait_for(lambda: any("embedded Redis died; starting it again" in line for line in output), 60,
             "`up` to start Redis again")  # fmt: skip
    wait_for(lambda: get_json(f"http://127.0.0.1:{port}/healthz").get("redis") == "ok", 60, "Redis to be healthy")
    wait_for(lambda: rq_worker_names(data_dir), 60, "the RQ workers to be registered again")
    after = redis.Redis(unix_socket_path=socket_path, socket_timeout=5)
    assert after.get("sewamitra:test:kept") == b"yes"  # from the AOF
    after.close()
    assert process.poll() is None
    second = int((data_dir / "redis" / "redis.pid").read_text())
    assert second != first and alive(second)
