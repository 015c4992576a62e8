"""`sewamitra bench commits` at a toy size on the real PostgreSQL and Redis: both ways of each
comparison measured in every round, the figures printed with the machine, and the work done for real
(each first-time caller remembered and sent the notice, whichever way). Timings are printed, never asserted."""

from __future__ import annotations

import io

import pytest
import redis

from core.exceptions import SewamitraError
from devtools.bench import commits


def test_both_ways_are_measured_in_every_round_and_each_first_call_did_its_work(
    postgres_server_url: str, redis_server_url: str
) -> None:
    out = io.StringIO()

    result = commits.main(10, 2, postgres_url=postgres_server_url, redis_url=redis_server_url, out=out)

    assert result.measured.keys() == {commits.STATE, commits.FIRST}
    assert result.measured[commits.STATE].keys() == {commits.STATE_CLIENT, commits.STATE_DIRECT}
    assert result.measured[commits.FIRST].keys() == {commits.FIRST_ONE_BY_ONE, commits.FIRST_AT_ONCE}
    for ways in result.measured.values():
        assert all(len(spent) == 2 and all(value > 0 for value in spent) for spent in ways.values())
    first_calls = 2 * (commits.WARM_UP + 2 * 10)  # both ways' warm-up and rounds, a new caller each turn
    assert (result.callers, result.notices) == (first_calls, first_calls)
    report = out.getvalue()
    for line in ("# sewamitra bench commits", "- CPU: ", "- PostgreSQL: ", "- Redis: ", "turns=10, rounds=2"):
        assert line in report
    for way in (commits.STATE_CLIENT, commits.STATE_DIRECT, commits.FIRST_ONE_BY_ONE, commits.FIRST_AT_ONCE):
        assert f"| {way} " in report
    assert f"first-time callers remembered: {first_calls}; privacy notices recorded for them: {first_calls}" in report
    assert not redis.Redis.from_url(redis_server_url).dbsize()  # the bench's keys gone with it


def test_a_run_too_small_to_alternate_is_refused(postgres_server_url: str, redis_server_url: str) -> None:
    with pytest.raises(SewamitraError, match="--rounds at least 2"):
        commits.main(10, 1, postgres_url=postgres_server_url, redis_url=redis_server_url, out=io.StringIO())
