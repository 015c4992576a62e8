"""The Redis database a benchmark claims, on the real Redis: emptied before and after, and never
under another benchmark still running there (its calls would lose their state mid-call)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
import redis

from core.exceptions import SewamitraError
from devtools.bench import scratch


def test_a_claimed_database_is_emptied_before_and_after_and_names_its_bench(
    redis_client: redis.Redis, redis_server_url: str
) -> None:
    with scratch.claimed_redis(redis_server_url) as connection:
        connection.set("sewamitra:call:CA1", "the bench's own")
        assert redis_client.get(scratch.MARKER) == f"{socket.gethostname()} process {os.getpid()}".encode()
    assert redis_client.dbsize() == 0


def test_a_database_another_bench_is_running_on_is_refused_and_left_as_it_is(
    redis_client: redis.Redis, redis_server_url: str
) -> None:
    with scratch.claimed_redis(redis_server_url) as running:  # a bench of this very process, still running
        running.set("sewamitra:call:CA1", "a call in progress")
        with (
            pytest.raises(SewamitraError, match="in use by another benchmark"),
            scratch.claimed_redis(redis_server_url),
        ):
            pass
        assert running.get("sewamitra:call:CA1") == b"a call in progress"


def test_a_bench_on_another_host_is_taken_as_running(redis_client: redis.Redis, redis_server_url: str) -> None:
    redis_client.set(scratch.MARKER, "bench-elsewhere.invalid process 1")
    redis_client.set("sewamitra:call:CA1", "its call")

    refused = pytest.raises(SewamitraError, match=re.escape("bench-elsewhere.invalid process 1"))
    with refused, scratch.claimed_redis(redis_server_url):
        pass

    assert redis_client.get("sewamitra:call:CA1") == b"its call"


def test_the_database_of_a_bench_that_is_over_is_taken(redis_client: redis.Redis, redis_server_url: str) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    redis_client.set(scratch.MARKER, f"{socket.gethostname()} process {int(ended.stdout)}")
    redis_client.set("sewamitra:call:CA1", "left by a bench that was killed")

    with scratch.claimed_redis(redis_server_url) as connection:
        assert connection.get("sewamitra:call:CA1") is None  # emptied first

    redis_client.set(scratch.MARKER, "1")  # as benches before this one marked it: no process named
    with scratch.claimed_redis(redis_server_url):
        pass


def test_a_database_with_keys_of_something_else_is_refused(redis_client: redis.Redis, redis_server_url: str) -> None:
    redis_client.set("someone:else", "theirs")

    refused = pytest.raises(SewamitraError, match="holds keys the benchmark did not make")
    with refused, scratch.claimed_redis(redis_server_url):
        pass

    assert redis_client.get("someone:else") == b"theirs"
