"""A run split over pytest-xdist's workers: each worker uses the services its controller chose (and
started, and stops), on the same PostgreSQL server and a Redis database of its own, since each test
empties the Redis database it uses."""

from __future__ import annotations

import pytest
import redis

from tests import services


def run_on(postgres_server_url: str, redis_url: str) -> services.Services:
    postgres = services.Service(postgres_server_url, "embedded", "nothing answered at 127.0.0.1:5432")
    return services.Services(postgres, services.Service(redis_url, "configured"), None, [])


def test_each_worker_joins_the_controllers_services_on_a_redis_database_of_its_own(
    monkeypatch: pytest.MonkeyPatch, postgres_server_url: str, redis_server_url: str
) -> None:
    monkeypatch.setenv(services.SHARED, "")  # put back as it was after the test
    redis_server = redis_server_url.rsplit("/", 1)[0]
    services.share(run_on(postgres_server_url, f"{redis_server}/3"))

    first, third = services.joined(0), services.joined(2)

    assert first.postgres == third.postgres == run_on(postgres_server_url, "").postgres
    assert (first.redis.url, third.redis.url) == (f"{redis_server}/3", f"{redis_server}/5")
    assert third.redis.describe() == f"configured {redis_server}/5 (worker 2's database)"
    assert first.chromium is None
    assert first.started == third.started == []  # the controller's to stop, not a worker's


def test_a_worker_past_the_servers_last_redis_database_stops_the_run_saying_why(
    monkeypatch: pytest.MonkeyPatch, postgres_server_url: str, redis_server_url: str
) -> None:
    monkeypatch.setenv(services.SHARED, "")
    redis_server = redis_server_url.rsplit("/", 1)[0]
    client = redis.Redis.from_url(redis_server_url)
    count = int(str(client.config_get("databases")["databases"]))  # 16 unless configured otherwise
    client.close()
    services.share(run_on(postgres_server_url, f"{redis_server}/{count - 2}"))

    assert services.joined(1).redis.url == f"{redis_server}/{count - 1}"
    with pytest.raises(RuntimeError, match=f"worker 2 would use Redis database {count}, but the server has {count}"):
        services.joined(2)
